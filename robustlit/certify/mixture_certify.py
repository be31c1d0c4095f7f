"""Certified radii of a mixed classifier on a batch: Lipschitz and smoothing versions (docs/mixed_classifier.md).

Thin batch wrappers around :mod:`robustlit.certify.mixture_radius`: the Lipschitz version reads the
robust model's softmax; the smoothing version estimates the smoothed robust model's top-class
probability by Monte Carlo (selection on ``n0`` draws, Clopper-Pearson lower bound on ``n``
independent draws, docs/contracts.md) and uses ``p2 = 1 - p1_lower`` as the runner-up bound.
Pure torch/scipy, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.certify.bounds import clopper_pearson_lower
from robustlit.certify.mixture_radius import lipschitz_mixture_radius, smoothed_mixture_radius
from robustlit.certify.smoothing import SmoothedClassifier

__all__ = ["certify_mixture_lipschitz", "certify_mixture_smoothed"]


def certify_mixture_lipschitz(
    robust: nn.Module, x: Tensor, alpha: float, lipschitz: float, scale: float = 1.0
) -> tuple[Tensor, Tensor]:
    """``(prediction, radius)`` (N,) each: the mixture predicts h's class within ``radius`` of x.

    ``lipschitz`` must bound the Lipschitz constant of every output of ``softmax(scale * robust(x))``
    in the norm of the certificate; ``alpha`` must lower-bound the mixture's weight of h over the
    whole ball (the constant alpha, or the mixing network's compressed minimum).
    """
    with torch.no_grad():
        probs = (scale * robust(x)).softmax(dim=1)
    return probs.argmax(dim=1), lipschitz_mixture_radius(probs, alpha, lipschitz)


def certify_mixture_smoothed(
    robust: nn.Module,
    x: Tensor,
    alpha: float,
    sigma: float,
    n0: int,
    n: int,
    confidence_alpha: float = 0.001,
    batch_size: int = 1000,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``(prediction, radius)`` (N,) for the mixture ``(1 - alpha) g + alpha * smooth_sigma(h)``.

    Bai et al.'s RS certificate (docs/mixed_classifier.md): ``r = (sigma/2) max(0, Phi^-1(alpha p1) -
    Phi^-1(alpha p2 + 1 - alpha))`` with p1 the Clopper-Pearson lower bound (level
    ``1 - confidence_alpha``) of h's top class under Gaussian noise, p2 = 1 - p1. For alpha = 1 this
    is Cohen et al.'s radius. Radius 0 means no certificate (the prediction is still h's top class).
    """
    smoothed = SmoothedClassifier(robust, sigma, input_bounds=bounds)
    predictions, radii = [], []
    for xi in x:
        selected = int(smoothed.sample_counts(xi, n0, batch_size, generator).argmax())
        counts = smoothed.sample_counts(xi, n, batch_size, generator)
        p1 = float(clopper_pearson_lower(int(counts[selected]), n, confidence_alpha))
        predictions.append(selected)
        radii.append(float(smoothed_mixture_radius(p1, 1.0 - p1, alpha, sigma)))
    return torch.tensor(predictions, dtype=torch.long), torch.tensor(radii, dtype=torch.float64)
