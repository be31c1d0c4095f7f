"""Gaussian noise and blur corruptions (CIFAR-10-C severities) on [0, 1] images."""

from __future__ import annotations

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
