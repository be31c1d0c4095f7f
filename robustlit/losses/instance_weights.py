"""Instance-reweighting baselines for DONE: GAIRAT and MAIL weights (docs/reweighting.md).

Both return detached per-example weights meant for :func:`robustlit.losses.dro.weighted_mean`.

Normalisation choice: by default both are rescaled to average exactly 1 over the batch
(v_i ← N v_i / Σ_j v_j), so a weighted mean keeps the scale of the unweighted loss and learning
rates transfer. GAIRAT's reference code (``GAIR.py``) does exactly this; MAIL's reference code
(``mail_loss.py``) instead multiplies by a fixed 3 without batch normalisation — pass
``normalise=False, scale=3.0`` to :func:`mail_weights` to reproduce it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _normalise_to_mean_one(weights: Tensor) -> Tensor:
    return weights * (weights.numel() / weights.sum())


def gairat_weights(
    kappa: Tensor, num_steps: int, lam: float = -1.0, normalise: bool = True, floor_half: bool = False
) -> Tensor:
    """GAIRAT "Tanh" weights v_i = ½ (1 + tanh(λ + 5 (1 − 2 κ_i / K))) (Zhang et al., ICLR 2021).

    ``kappa`` holds κ_i ∈ {0, .., K}, the number of PGD steps example i survived before being
    misclassified (κ = 0: misclassified from the start, closest to the boundary, largest weight);
    ``num_steps`` is K. The weight decreases with κ. ``floor_half=True`` uses ⌊K/2⌋ in place of K/2 as
    the reference code does (identical for even K, e.g. the default K = 10). ``lam`` is λ (default −1,
    as in the reference). Returns detached weights with mean 1 unless ``normalise=False``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps K must be >= 1; got {num_steps}")
    if not kappa.is_floating_point():
        kappa = kappa.to(torch.get_default_dtype())
    kappa = kappa.detach()
    if (kappa < 0).any() or (kappa > num_steps).any():
        raise ValueError(f"kappa must lie in [0, num_steps={num_steps}]")
    half = float(num_steps // 2) if floor_half else num_steps / 2
    if half == 0:
        raise ValueError("floor_half=True needs num_steps >= 2")
    weights = 0.5 * (1.0 + torch.tanh(lam + 5.0 * (half - kappa) / half))
    return _normalise_to_mean_one(weights) if normalise else weights


def probabilistic_margin(logits: Tensor, y: Tensor) -> Tensor:
    """MAIL's probabilistic margin PM_i = max_{k≠y_i} p_k − p_{y_i}, p = softmax(logits), in [−1, 1].

    Compute it on the adversarial example's logits. Negative: correctly classified (far from the
    boundary for PM → −1); positive: misclassified. Returns a detached tensor.
    """
    probs = torch.softmax(logits.detach(), dim=1)
    true_prob = probs.gather(1, y.view(-1, 1)).squeeze(1)
    others = probs.scatter(1, y.view(-1, 1), -1.0)
    return others.max(dim=1).values - true_prob


def mail_weights(
    margin: Tensor, slope: float = 1.0, bias: float = -1.5, normalise: bool = True, scale: float = 1.0
) -> Tensor:
    """MAIL weights v_i = scale · sigmoid(slope · (PM_i + bias)) (Wang et al., NeurIPS 2021).

    ``margin`` is the probabilistic margin (:func:`probabilistic_margin`); the weight increases with it
    (less robust examples get more weight) for slope > 0. Defaults slope = 1, bias = −1.5 follow the
    reference code. With ``normalise=True`` (default) ``scale`` is irrelevant and the weights average 1
    over the batch; ``normalise=False, scale=3.0`` reproduces the reference code. Returns detached weights.
    """
    weights = scale * torch.sigmoid(slope * (margin.detach() + bias))
    return _normalise_to_mean_one(weights) if normalise else weights
