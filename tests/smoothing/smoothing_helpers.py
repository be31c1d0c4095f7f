"""Shared helpers for the smoothing tests: a quickly trained GaussianSmoothing model on digits."""

from __future__ import annotations

import torch

from robustlit.data import DigitsDataModule
from robustlit.methods.gaussian_smoothing import GaussianSmoothing
from robustlit.models import LinearClassifier

DIGITS_MEAN, DIGITS_STD = (0.3,), (0.38,)


def digits() -> DigitsDataModule:
    data = DigitsDataModule()
    data.setup()
    return data


def trained_linear_smoothing(steps: int = 60, sigma: float = 0.25, seed: int = 0) -> GaussianSmoothing:
    """A linear GaussianSmoothing model fitted for a few full-batch Adam steps on noisy digits (~90% noisy
    accuracy): cheap to certify, and with a spread of radii and some abstentions."""
    torch.manual_seed(seed)
    model = GaussianSmoothing(
        sigma=sigma, backbone=LinearClassifier(64, 10), num_classes=10, mean=DIGITS_MEAN, std=DIGITS_STD
    )
    x, y = digits().train_dataset.tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        model.training_loss(x, y).backward()
        optimizer.step()
    return model.eval()
