"""Distribution-shift corruptions for [0, 1] images, to measure calibration under shift (docs/calibration.md).

Pure-torch corruptions at severities 1..5, in [0, 1] pixel units. Four follow the CIFAR-10-C generation code
(Hendrycks & Dietterich, ICLR 2019), whose parameter tables are for 32x32 images, chosen over the ImageNet-C
ones (0.08..0.38 noise, 1..6 px blur, 60..3 photons) because robustlit's image datasets are small (8x8
digits, 28x28 MNIST, 32x32 CIFAR): the ImageNet-C blur would erase an 8x8 image. Rotation follows the
rotated-MNIST shift of Ovadia et al. (NeurIPS 2019, "Can you trust your model's uncertainty?", Sec. 4.1),
with robustlit's 15-degree steps. Together they make an MNIST-C-style set (Mu & Gilmer 2019) generated
here rather than downloaded:

| name | parameter, severity 1..5 | source |
|---|---|---|
| ``gaussian_noise`` | additive noise std 0.04, 0.06, 0.08, 0.09, 0.10 | CIFAR-10-C |
| ``shot_noise`` | Poisson photons per unit intensity 500, 250, 100, 75, 50 | CIFAR-10-C |
| ``gaussian_blur`` | blur std 0.4, 0.6, 0.7, 0.8, 1.0 px | CIFAR-10-C |
| ``contrast`` | contrast factor 0.75, 0.5, 0.4, 0.3, 0.15 | CIFAR-10-C |
| ``rotate`` | counter-clockwise rotation 15, 30, 45, 60, 75 degrees | rotated MNIST, robustlit's steps |

Outputs are clipped to [0, 1] and keep the input's shape, dtype and device. The two noises draw from an
optional ``generator``; the other three are deterministic. :func:`corrupt` calls any of them by name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Standard deviation of the additive noise, severity 1..5 (CIFAR-10-C ``gaussian_noise``).
GAUSSIAN_NOISE_SIGMAS: tuple[float, ...] = (0.04, 0.06, 0.08, 0.09, 0.10)
# Standard deviation of the blur kernel in pixels, severity 1..5 (CIFAR-10-C ``gaussian_blur``).
GAUSSIAN_BLUR_SIGMAS: tuple[float, ...] = (0.4, 0.6, 0.7, 0.8, 1.0)
# Photons per unit intensity of the Poisson noise, severity 1..5 (CIFAR-10-C ``shot_noise``): fewer is noisier.
SHOT_NOISE_PHOTONS: tuple[float, ...] = (500.0, 250.0, 100.0, 75.0, 50.0)
# Factor applied to each image's deviation from its own per-channel mean (CIFAR-10-C ``contrast``).
CONTRAST_FACTORS: tuple[float, ...] = (0.75, 0.5, 0.4, 0.3, 0.15)
# Counter-clockwise rotation in degrees, severity 1..5 (rotated MNIST, Ovadia et al. 2019; robustlit's steps).
ROTATION_DEGREES: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 75.0)


def _check(x: Tensor, severity: int) -> None:
    if isinstance(severity, bool) or severity not in (1, 2, 3, 4, 5):
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


def shot_noise(x: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """Poisson(c_s · x) / c_s, clipped to [0, 1], with c_s = SHOT_NOISE_PHOTONS[severity − 1].

    Photon noise: its variance x / c_s grows with the intensity, so a black background stays black (on MNIST
    only the strokes are noisy). ``generator`` (on the device of ``x``) makes the noise reproducible.
    """
    _check(x, severity)
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    counts = torch.poisson((x * photons).float(), generator=generator)
    return (counts / photons).to(x.dtype).clamp(0.0, 1.0)


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


def contrast(x: Tensor, severity: int) -> Tensor:
    """(x − m) · c_s + m, clipped to [0, 1], with m each image's per-channel mean over H, W and
    c_s = CONTRAST_FACTORS[severity − 1] (CIFAR-10-C ``contrast``): the image fades towards its mean grey."""
    _check(x, severity)
    factor = CONTRAST_FACTORS[severity - 1]
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return ((x - mean) * factor + mean).clamp(0.0, 1.0)


def rotate(x: Tensor, severity: int) -> Tensor:
    """Rotation by ROTATION_DEGREES[severity − 1] degrees counter-clockwise about the image centre, bilinear,
    with the corners that enter the frame filled with 0 (black, MNIST's background)."""
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as tv_rotate

    _check(x, severity)
    angle = ROTATION_DEGREES[severity - 1]
    return tv_rotate(x, angle, interpolation=InterpolationMode.BILINEAR, fill=0.0).clamp(0.0, 1.0)


_RANDOM: dict[str, Callable[..., Tensor]] = {"gaussian_noise": gaussian_noise, "shot_noise": shot_noise}
_DETERMINISTIC: dict[str, Callable[[Tensor, int], Tensor]] = {
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "rotate": rotate,
}
#: Every corruption :func:`corrupt` knows, in the order of the table above.
SHIFT_NAMES: tuple[str, ...] = ("gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "rotate")


def corrupt(x: Tensor, name: str, severity: int, seed: int | None = None) -> Tensor:
    """The corruption ``name`` (one of :data:`SHIFT_NAMES`) at ``severity``; a random one draws from a generator
    on ``x``'s device seeded with ``seed`` (``None``: torch's global generator)."""
    if name in _RANDOM:
        generator = None if seed is None else torch.Generator(device=x.device).manual_seed(seed)
        return _RANDOM[name](x, severity, generator=generator)
    if name in _DETERMINISTIC:
        return _DETERMINISTIC[name](x, severity)
    raise ValueError(f"unknown shift {name!r}; choose one of {', '.join(SHIFT_NAMES)}")
