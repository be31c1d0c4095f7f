"""Certified radii of a mixed classifier on a batch: Lipschitz version, and a smoothed robust branch.

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554; see docs/mixed_classifier.md. Thin batch
wrappers around :mod:`robustlit.mixed.radius`.

- :func:`certify_mixture_lipschitz` certifies the evaluated mixture ``(1 - alpha) g + alpha h``
  itself, given a sound Lipschitz bound of h's softmax outputs.
- :func:`certify_smoothed_robust_branch` certifies a *different* classifier,
  ``(1 - alpha) g + alpha Smooth_sigma(h)``, whose robust branch is the Gaussian-smoothed h (Cohen
  et al. 2019). A :class:`~robustlit.mixed.classifier.MixedClassifier` mixes the raw h, so this is not
  a certificate of the mixture that the attacks evaluate; report it under its own name
  (:data:`SMOOTHED_BRANCH_METRIC`), never next to the evaluated mixture's accuracy as if it were one.

Pure torch/scipy, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.certify.bounds import clopper_pearson_lower
from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.mixed.radius import lipschitz_mixture_radius, smoothed_mixture_radius

__all__ = [
    "SMOOTHED_BRANCH_CERTIFIES",
    "SMOOTHED_BRANCH_METRIC",
    "certify_mixture_lipschitz",
    "certify_smoothed_robust_branch",
]

#: Metric / summary key for :func:`certify_smoothed_robust_branch`: says which model is certified.
SMOOTHED_BRANCH_METRIC = "smoothed_robust_branch"
#: What :func:`certify_smoothed_robust_branch` certifies, for reports and JSON summaries.
SMOOTHED_BRANCH_CERTIFIES = (
    "(1 - alpha) g + alpha Smooth_sigma(h): the mixture whose robust branch is the Gaussian-smoothed h, "
    "not the evaluated mixture (which mixes the raw h)"
)


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


def certify_smoothed_robust_branch(
    robust: nn.Module,
    x: Tensor,
    alpha: float,
    sigma: float,
    n0: int,
    n: int,
    failure_prob: float = 0.001,
    batch_size: int = 1000,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``(prediction, radius)`` (N,) for ``(1 - alpha) g + alpha * Smooth_sigma(h)``, not the evaluated mixture.

    The certified classifier replaces the mixture's robust branch h by its Gaussian smoothing
    ``Smooth_sigma(h)(x) = P[h(x + sigma eps) = c]`` (Cohen et al. 2019). The evaluated
    :class:`~robustlit.mixed.classifier.MixedClassifier` mixes ``softmax(h(x))``, so the radius says
    nothing about it; it certifies the evaluated model only when that model's robust branch *is*
    this smoothed classifier, which a ``MixedClassifier`` never is. Name the metric accordingly
    (:data:`SMOOTHED_BRANCH_METRIC`, description :data:`SMOOTHED_BRANCH_CERTIFIES`).

    Bai et al.'s certificate (2023): ``r = (sigma/2) max(0, Phi^-1(alpha p1) - Phi^-1(alpha p2 + 1 -
    alpha))`` with p1 the Clopper-Pearson lower bound (level ``1 - failure_prob``) of h's top
    class under Gaussian noise, estimated on ``n`` draws independent of the ``n0`` selection draws,
    and p2 = 1 - p1. For alpha = 1 this is Cohen et al.'s radius. Radius 0 means no certificate (the
    prediction is still the smoothed h's top class). ``alpha`` must lower-bound the weight of the
    robust branch over the ball.
    """
    smoothed = SmoothedClassifier(robust, sigma, input_bounds=bounds)
    predictions, radii = [], []
    for xi in x:
        selected = int(smoothed.sample_counts(xi, n0, batch_size, generator).argmax())
        counts = smoothed.sample_counts(xi, n, batch_size, generator)
        p1 = float(clopper_pearson_lower(int(counts[selected]), n, failure_prob))
        predictions.append(selected)
        radii.append(float(smoothed_mixture_radius(p1, 1.0 - p1, alpha, sigma)))
    return torch.tensor(predictions, dtype=torch.long), torch.tensor(radii, dtype=torch.float64)
