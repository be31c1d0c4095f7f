"""Hand-made 1-D, 3-class models on which a PGD that keeps only its last or highest-loss iterate overstates robustness.

Every example has label 0. Logits are piecewise linear in the scalar input t in [0, 1]; the
misclassified regions have a *lower* cross-entropy than the correctly classified ones, which is
possible with 3 classes (p = (0.45, 0.55, 0) is wrong at CE 0.8; p = (0.34, 0.33, 0.33) right at CE 1.08).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _wrong(t: Tensor) -> Tensor:
    """Misclassified as class 1; CE in [0.86, 0.95], rising as t falls."""
    return torch.stack([torch.zeros_like(t), torch.full_like(t, 0.2), -2 + 2 * (0.5 - t)], dim=1)


def _right(t: Tensor, start: float) -> Tensor:
    """Correct (z_0 >= 0.05 > z_1 = z_2 = 0) with CE in [1.03, 1.07], rising with t."""
    return torch.stack([0.1 * (1 - (t - start)), torch.zeros_like(t), torch.zeros_like(t)], dim=1)


class RestartToy(nn.Module):
    """t < 0.5: misclassified (CE rises leftwards); t >= 0.5: correct (CE rises rightwards).

    PGD stays in the half where it starts; with restarts, keeping the highest final loss keeps the
    correctly classified right half whenever one restart starts there.
    """

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # attacks need a parameter to find the device

    def forward(self, x: Tensor) -> Tensor:
        t = x.flatten(1)[:, 0] + 0 * self.anchor
        return torch.where((t < 0.5).unsqueeze(1), _wrong(t), _right(t, 0.5))


class SilentSuccessToy(nn.Module):
    """Correct on [0, 0.54) and [0.66, 1]; misclassified on the band [0.54, 0.66). CE rises with t everywhere
    (slowly inside the band), so sign-gradient ascent from 0.5 walks right through the band and out of it."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        t = x.flatten(1)[:, 0] + 0 * self.anchor
        left = torch.stack([1 - (t - 0.5), torch.zeros_like(t), torch.zeros_like(t)], dim=1)
        band = torch.stack([torch.zeros_like(t), torch.full_like(t, 0.2), -2 + (t - 0.54)], dim=1)
        out = torch.where((t < 0.54).unsqueeze(1), left, band)
        return torch.where((t >= 0.66).unsqueeze(1), _right(t, 0.66), out)
