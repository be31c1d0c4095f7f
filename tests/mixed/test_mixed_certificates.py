"""The smoothing certificate is of the smoothed robust branch, not of the evaluated mixture (Bai et al. 2023)."""

from __future__ import annotations

import torch
from mixed_toys import Linear2
from torch import nn

from robustlit.mixed.certificates import (
    SMOOTHED_BRANCH_CERTIFIES,
    SMOOTHED_BRANCH_METRIC,
    certify_mixture_lipschitz,
    certify_smoothed_robust_branch,
)
from robustlit.mixed.classifier import MixedClassifier


class Slab(nn.Module):
    """Class 0 inside the thin slab |x1 - 0.5| < 0.05, class 1 elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = 1.0 - 20.0 * (x[:, :1] - 0.5).abs()
        return torch.cat([inside, torch.zeros_like(inside)], dim=1)


def test_smoothed_branch_certificate_is_about_another_model():
    h = Slab()
    mixture = MixedClassifier(Linear2([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]), h, alpha=1.0)
    x = torch.tensor([[0.5, 0.5]])
    with torch.no_grad():
        evaluated = mixture(x).argmax(dim=1)
    gen = torch.Generator().manual_seed(0)
    certified, radius = certify_smoothed_robust_branch(h, x, 1.0, 0.5, 100, 2000, bounds=None, generator=gen)
    # raw h says 0 at x; its smoothing says 1 (the slab holds ~8% of the noise) with a positive radius
    assert evaluated.item() == 0 and certified.item() == 1 and radius.item() > 0
    assert (
        SMOOTHED_BRANCH_METRIC == "smoothed_robust_branch" and "not the evaluated mixture" in SMOOTHED_BRANCH_CERTIFIES
    )


def test_lipschitz_certificate_predicts_as_the_evaluated_mixture():
    h = Linear2([[4.0, 0.0], [-4.0, 0.0]], [0.0, 0.0])
    g = Linear2([[0.0, 0.0], [0.0, 0.0]], [0.0, 5.0])
    mixture = MixedClassifier(g, h, alpha=0.9)
    x = torch.tensor([[0.9, 0.1], [0.8, 0.5]])
    pred, radius = certify_mixture_lipschitz(h, x, 0.9, lipschitz=4.0)
    with torch.no_grad():
        assert torch.equal(pred, mixture(x).argmax(dim=1))
    assert (radius > 0).all()
