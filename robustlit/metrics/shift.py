"""Distribution-shift corruptions for [0, 1] images, to measure calibration under shift (docs/calibration.md).

Pure-torch versions of two CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019), severities 1..5.
The sigma tables are those of the CIFAR-10-C generation code (for 32x32 images, in [0, 1] pixel
units), chosen over the ImageNet-C ones (0.08..0.38 noise, 1..6 px blur) because robustlit's image
datasets are small (8x8 digits, 28x28 MNIST, 32x32 CIFAR): the ImageNet-C blur would erase an 8x8
image. Outputs are clipped to [0, 1] and keep the input's shape, dtype and device.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Standard deviation of the additive noise, severity 1..5 (CIFAR-10-C ``gaussian_noise``).
GAUSSIAN_NOISE_SIGMAS: tuple[float, ...] = (0.04, 0.06, 0.08, 0.09, 0.10)
# Standard deviation of the blur kernel in pixels, severity 1..5 (CIFAR-10-C ``gaussian_blur``).
GAUSSIAN_BLUR_SIGMAS: tuple[float, ...] = (0.4, 0.6, 0.7, 0.8, 1.0)


def _check(x: Tensor, severity: int) -> None:
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be an integer in 1..5; got {severity!r}")
    if x.dim() < 3:
        raise ValueError(f"expected images (..., C, H, W); got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("corruptions expect un-normalised images in [0, 1] (docs/contracts.md, pixel space)")


def gaussian_noise(x: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """x + σ_s · N(0, I), clipped to [0, 1], with σ_s = GAUSSIAN_NOISE_SIGMAS[severity − 1].

    ``generator`` (on the device of ``x``) makes the noise reproducible.
    """
    _check(x, severity)
    sigma = GAUSSIAN_NOISE_SIGMAS[severity - 1]
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + sigma * noise).clamp(0.0, 1.0)


def gaussian_blur(x: Tensor, severity: int) -> Tensor:
    """Gaussian blur with σ_s = GAUSSIAN_BLUR_SIGMAS[severity − 1] pixels, clipped to [0, 1].

    Kernel radius ⌊4σ + ½⌋ (scipy/skimage's truncate = 4, as in the CIFAR-10-C code), capped at
    min(H, W) − 1 so that the reflect padding of torchvision's ``gaussian_blur`` stays valid on tiny
    images; borders are reflected (CIFAR-10-C uses skimage's default "nearest" — a border-only
    difference).
    """
    # Imported here: importing torchvision loads its whole model zoo (seconds on a small CPU), which
    # importers of robustlit.metrics that never blur should not pay.
    from torchvision.transforms.functional import gaussian_blur as tv_gaussian_blur

    _check(x, severity)
    sigma = GAUSSIAN_BLUR_SIGMAS[severity - 1]
    height, width = x.shape[-2:]
    radius = min(int(4 * sigma + 0.5), min(height, width) - 1)
    if radius < 1:
        return x.clone()
    size = 2 * radius + 1
    return tv_gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma]).clamp(0.0, 1.0)
