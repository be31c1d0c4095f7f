"""The 8x8 digits with a controllable robustness-accuracy trade-off (image counterpart of Tsipras et al. 2019).

Robust features: the digits' strokes, each image at its own random contrast (faint digits are the uncertain,
non-robust ones: what a mixed classifier needs, docs/tradeoff.md) and optionally degraded (downsampled, blurred,
noised, occluded; seeded) so that shape alone supports a chosen clean accuracy. Non-robust features (Ilyas et al.
2019, "Adversarial Examples Are Not Bugs, They Are Features"): a faint fixed random +-``amplitude`` pattern per
class, added to every image, showing the true class with probability ``agreement`` (else a random other class).
A standard model reads the pattern and becomes nearly perfect; an Linf attacker with ``eps >= 2 * amplitude``
can replace it by another class's pattern, and one with ``eps >= amplitude`` can erase it, so a robust model
must rely on the shape. See docs/tradeoff.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import TensorDataset

from robustlit.data.digits import DigitsDataModule

__all__ = ["TradeoffDigitsDataModule", "class_patterns", "degrade_digits"]


def class_patterns(num_classes: int, shape: tuple[int, ...], seed: int) -> Tensor:
    """(num_classes, *shape) fixed random +-1 patterns, one per class (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (num_classes, *shape), generator=generator).float() * 2 - 1


def _blur(x: Tensor, sigma: float) -> Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


def degrade_digits(
    x: Tensor,
    generator: torch.Generator,
    downsample: int = 2,
    blur_sigma: float = 0.0,
    noise_std: float = 0.08,
    occlusion: int = 0,
) -> Tensor:
    """Degrade (N, 1, H, W) images in [0, 1]: average-pool by ``downsample`` and upsample back (bilinear),
    Gaussian blur, additive Gaussian noise (std ``noise_std``) and one random ``occlusion`` x ``occlusion``
    square set to 0 per image; randomness from ``generator``; clipped to [0, 1]."""
    if downsample > 1:
        size = x.shape[-2:]
        x = F.interpolate(F.avg_pool2d(x, downsample), size=size, mode="bilinear", align_corners=False)
    if blur_sigma > 0:
        x = _blur(x, blur_sigma)
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator)
    if occlusion > 0:
        n, _, h, w = x.shape
        rows = torch.randint(0, h - occlusion + 1, (n,), generator=generator)
        cols = torch.randint(0, w - occlusion + 1, (n,), generator=generator)
        r, c = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        inside = (r >= rows.view(n, 1, 1)) & (r < rows.view(n, 1, 1) + occlusion)
        inside = inside & (c >= cols.view(n, 1, 1)) & (c < cols.view(n, 1, 1) + occlusion)
        x = x.masked_fill(inside.unsqueeze(1), 0.0)
    return x.clamp(0.0, 1.0)


class TradeoffDigitsDataModule(DigitsDataModule):
    """Digits with degraded strokes (robust, weak) plus a class pattern (non-robust, strong); docs/tradeoff.md.

    ``x = clip(amplitude + (1 - 2 amplitude) * degrade(k * digit) + amplitude * P_c, 0, 1)`` with a per-image
    contrast ``k ~ U(contrast)``, where ``P_c`` is the
    fixed +-1 pattern of class ``c`` (``c = y`` with probability ``agreement``, else a uniformly drawn other
    class). The affine rescaling keeps the pattern from being clipped. Same fixed splits, batch sizes and
    epoch-seeded training order as :class:`DigitsDataModule`; the degradation and the pattern draws are
    seeded by ``data_seed`` (one stream per split), so the data are identical in every run.

    Args:
        downsample: average-pooling factor of the strokes (1: none).
        blur_sigma: Gaussian blur of the strokes, in pixels (0: none).
        noise_std: std of the additive pixel noise.
        occlusion: side of one random zeroed square per image (0: none).
        contrast: range (low, high) of the per-image stroke contrast: each digit is multiplied by a factor drawn
            uniformly from it before the degradation ((1, 1): full contrast, the first version's setting).
        amplitude: pattern amplitude a (an Linf attack with eps >= 2a swaps the pattern).
        agreement: probability q that the pattern shows the true class (default 1: the pattern alone
            predicts the label, so a model that reads it can be nearly perfect; q < 1 caps a pure pattern
            reader at about q).
        data_seed: seed of the patterns, the degradation and the pattern draws.
        (others): see :class:`DigitsDataModule`.
    """

    mean = (0.4,)
    std = (0.3,)

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = 256,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        downsample: PositiveInt = 1,
        blur_sigma: NonNegativeFloat = 0.0,
        noise_std: NonNegativeFloat = 0.08,
        occlusion: NonNegativeInt = 0,
        contrast: tuple[ClosedUnitInterval, ClosedUnitInterval] = (0.05, 1.0),
        amplitude: NonNegativeFloat = 0.05,
        agreement: ClosedUnitInterval = 1.0,
        data_seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, val_fraction, test_fraction, split_seed)
        if not 0.0 <= amplitude < 0.5:
            raise ValueError(f"TradeoffDigitsDataModule.amplitude must lie in [0, 0.5); got {amplitude}")
        if not 0.0 <= agreement <= 1.0:
            raise ValueError(f"TradeoffDigitsDataModule.agreement must lie in [0, 1]; got {agreement}")
        if not 0.0 <= contrast[0] <= contrast[1] <= 1.0:
            raise ValueError(
                f"TradeoffDigitsDataModule.contrast must be (low, high) with 0 <= low <= high <= 1; got {contrast}"
            )
        if occlusion >= 8:
            raise ValueError(f"TradeoffDigitsDataModule.occlusion must be < 8 (image side); got {occlusion}")
        self.downsample, self.blur_sigma, self.noise_std, self.occlusion = downsample, blur_sigma, noise_std, occlusion
        self.amplitude, self.agreement, self.data_seed = amplitude, agreement, data_seed
        self.contrast = (float(contrast[0]), float(contrast[1]))

    def transform(self, x: Tensor, y: Tensor, split: int) -> tuple[Tensor, Tensor]:
        """The benchmark's images for clean digits ``x`` (N, 1, 8, 8) with labels ``y``; ``split`` picks the
        random stream (0 train, 1 val, 2 test). Returns ``(images, pattern_class)``."""
        generator = torch.Generator().manual_seed(self.data_seed * 1000 + 17 + split)
        low, high = self.contrast
        if (low, high) != (1.0, 1.0):  # own stream: the full-contrast setting keeps its images bit for bit
            draws = torch.Generator().manual_seed(self.data_seed * 1000 + 517 + split)
            x = x * (low + (high - low) * torch.rand(len(y), generator=draws)).view(-1, *([1] * (x.dim() - 1)))
        strokes = degrade_digits(x, generator, self.downsample, self.blur_sigma, self.noise_std, self.occlusion)
        agree = torch.rand(len(y), generator=generator) < self.agreement
        other = (y + torch.randint(1, self.num_classes, (len(y),), generator=generator)) % self.num_classes
        shown = torch.where(agree, y, other)
        patterns = class_patterns(self.num_classes, tuple(x.shape[1:]), self.data_seed)
        a = self.amplitude
        images = (a + (1 - 2 * a) * strokes + a * patterns[shown]).clamp(0.0, 1.0)
        return images, shown

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        super().setup(stage)
        splits = []
        for index, dataset in enumerate((self.train_dataset, self.val_dataset, self.test_dataset)):
            assert isinstance(dataset, TensorDataset)
            x, y = dataset.tensors
            splits.append(TensorDataset(self.transform(x, y, index)[0], y))
        self.train_dataset, self.val_dataset, self.test_dataset = splits
