"""The distribution-shift corruptions (CIFAR-10-C severities, rotations) on [0, 1] images."""

from __future__ import annotations

import math

import pytest
import torch

from robustlit.metrics.shift import GAUSSIAN_NOISE_SIGMAS, gaussian_blur, gaussian_noise


def high_frequency_energy(x: torch.Tensor) -> float:
    """Energy of the discrete Laplacian, a high-pass filter."""
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return lap.pow(2).mean().item()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_noise_stays_in_range_and_grows_with_severity(images: torch.Tensor) -> None:
    grey = torch.full((4, 1, 32, 32), 0.5)
    previous = 0.0
    for severity in range(1, 6):
        noisy = gaussian_noise(images, severity, torch.Generator().manual_seed(1))
        assert noisy.min() >= 0 and noisy.max() <= 1 and noisy.shape == images.shape
        std = (gaussian_noise(grey, severity, torch.Generator().manual_seed(1)) - grey).std().item()
        assert std == pytest.approx(GAUSSIAN_NOISE_SIGMAS[severity - 1], rel=0.05)
        assert std > previous
        previous = std


def test_noise_is_reproducible_with_a_generator(images: torch.Tensor) -> None:
    a = gaussian_noise(images, 3, torch.Generator().manual_seed(7))
    b = gaussian_noise(images, 3, torch.Generator().manual_seed(7))
    c = gaussian_noise(images, 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_blur_removes_high_frequencies_with_severity(images: torch.Tensor) -> None:
    previous = high_frequency_energy(images)
    for severity in range(1, 6):
        blurred = gaussian_blur(images, severity)
        assert blurred.min() >= 0 and blurred.max() <= 1 and blurred.shape == images.shape
        energy = high_frequency_energy(blurred)
        assert energy < previous
        previous = energy
    constant = torch.full((2, 1, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(constant, 5), constant, atol=1e-6)


def test_blur_on_tiny_digits_images() -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert gaussian_blur(x, 5).shape == x.shape
    assert high_frequency_energy(gaussian_blur(x, 5)) < high_frequency_energy(x)


def test_invalid_inputs() -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError):
        gaussian_noise(x, 0)
    with pytest.raises(ValueError):
        gaussian_blur(x, 6)
    with pytest.raises(ValueError):
        gaussian_blur(x * 2 - 0.5, 1)


def test_shot_noise_grows_with_severity_and_keeps_black_black() -> None:
    from robustlit.metrics.shift import shot_noise

    grey = torch.full((4, 1, 28, 28), 0.5)
    previous = 0.0
    for severity in range(1, 6):
        noisy = shot_noise(grey, severity, torch.Generator().manual_seed(1))
        assert noisy.min() >= 0 and noisy.max() <= 1 and noisy.shape == grey.shape
        std = (noisy - grey).std().item()
        assert std > previous  # Poisson: std sqrt(0.5 / c) grows as the photon count c falls
        previous = std
    black = torch.zeros(2, 1, 28, 28)
    assert torch.equal(shot_noise(black, 5, torch.Generator().manual_seed(0)), black)
    a = shot_noise(grey, 3, torch.Generator().manual_seed(4))
    assert torch.equal(a, shot_noise(grey, 3, torch.Generator().manual_seed(4)))


def test_contrast_shrinks_the_spread_around_each_image_mean(images: torch.Tensor) -> None:
    from robustlit.metrics.shift import CONTRAST_FACTORS, contrast

    for severity in range(1, 6):
        low = contrast(images, severity)
        assert torch.allclose(low.mean(dim=(-2, -1)), images.mean(dim=(-2, -1)), atol=1e-5)
        ratio = (low.std(dim=(-2, -1)) / images.std(dim=(-2, -1))).mean().item()
        assert ratio == pytest.approx(CONTRAST_FACTORS[severity - 1], rel=1e-4)


def test_rotation_by_the_table_angle() -> None:
    from robustlit.metrics.shift import rotate

    bar = torch.zeros(1, 1, 29, 29)
    bar[..., 14, 4:25] = 1.0  # a horizontal bar through the centre
    turned = rotate(bar, 5)  # 75 degrees
    assert turned.shape == bar.shape and turned.min() >= 0 and turned.max() <= 1
    rows, cols = torch.nonzero(turned[0, 0] > 0.5, as_tuple=True)
    # the bar now runs mostly vertically, tilted as a line at +75 degrees (counter-clockwise, y axis down)
    slope = -torch.linalg.lstsq(cols.double().view(-1, 1) - 14, (rows.double() - 14).view(-1, 1)).solution.item()
    assert slope == pytest.approx(math.tan(math.radians(75)), rel=0.2)
    assert torch.allclose(rotate(torch.zeros(2, 1, 8, 8), 3), torch.zeros(2, 1, 8, 8))


def test_corrupt_dispatches_by_name_and_seeds_the_noise(images: torch.Tensor) -> None:
    from robustlit.metrics.shift import SHIFT_NAMES, corrupt

    for name in SHIFT_NAMES:
        out = corrupt(images, name, 3, seed=5)
        assert out.shape == images.shape and not torch.equal(out, images)
        assert torch.equal(out, corrupt(images, name, 3, seed=5))
    assert not torch.equal(corrupt(images, "shot_noise", 3, seed=5), corrupt(images, "shot_noise", 3, seed=6))
    with pytest.raises(ValueError, match="unknown shift"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "rotate", 0)
