"""Certified radii of a mixed classifier ``(1 - alpha) g + alpha h`` (docs/mixed_classifier.md).

The standard model g is arbitrary (unverified); only the robust model h is certified. Both radii
assume the worst case for g: all of its probability on h's runner-up class, so the mixture keeps
h's class y while ``alpha * (h_y - h_j) > 1 - alpha`` for every j != y, i.e. while h's probability
margin exceeds ``mu = (1 - alpha) / alpha``. Since a margin is at most 1, no certificate exists
for ``alpha < 1/2`` (mu > 1); both functions then return 0. Pure torch, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lipschitz_mixture_radius", "smoothed_mixture_radius"]


def lipschitz_mixture_radius(prob_rob: Tensor, alpha: float | Tensor, lipschitz: float) -> Tensor:
    """Lipschitz certificate of the mixture: ``r = max(0, m_h - (1 - alpha)/alpha) / (2 L)``.

    Args:
        prob_rob: (N, K) probabilities of the robust model h (softmax of its logits).
        alpha: weight of h, a float or a 0-d / (N,) tensor in [0, 1].
        lipschitz: L such that every output ``h_k`` is L-Lipschitz in the chosen norm; the radius
            is in that norm. The caller must pass a sound (upper) bound on L.

    Returns:
        (N,) radii. The mixture predicts h's top class y at every x' with ``||x' - x|| < r``,
        whatever g does. ``m_h = h_y - max_{k != y} h_k`` is h's probability margin. The radius is
        0 whenever ``m_h <= (1 - alpha) / alpha``, in particular for every alpha < 1/2.
    """
    if prob_rob.dim() != 2 or prob_rob.shape[1] < 2:
        raise ValueError(f"prob_rob must have shape (N, K) with K >= 2, got {tuple(prob_rob.shape)}")
    if not lipschitz > 0:
        raise ValueError(f"lipschitz must be positive, got {lipschitz}")
    dtype = torch.promote_types(prob_rob.dtype, torch.float32)
    top2 = prob_rob.to(dtype).topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    a = torch.as_tensor(alpha, dtype=dtype, device=prob_rob.device)
    # alpha * margin - (1 - alpha) >= 0  <=>  margin >= mu; written without dividing by alpha.
    slack = torch.clamp(a * margin + a - 1.0, min=0.0)
    safe_a = torch.where(a > 0, a, torch.ones_like(a))
    radius = torch.where(a >= 0.5, slack / (2.0 * safe_a * lipschitz), torch.zeros_like(slack))
    return radius.expand_as(margin)


def smoothed_mixture_radius(
    p1: float | Tensor, p2: float | Tensor, alpha: float | Tensor, sigma: float | Tensor
) -> Tensor:
    """Randomized-smoothing certificate of the mixture (Bai et al. 2023; docs/mixed_classifier.md).

    ``r = (sigma / 2) * max(0, Phi^-1(p1 / (1 + mu)) - Phi^-1((p2 + mu) / (1 + mu)))`` with
    ``mu = (1 - alpha) / alpha``; equivalently ``Phi^-1(alpha p1) - Phi^-1(alpha p2 + 1 - alpha)``,
    which is how it is computed (no division, alpha = 0 gives radius 0). For alpha = 1 this is
    Cohen et al.'s ``(sigma / 2)(Phi^-1(p1) - Phi^-1(p2))``.

    Why it holds: ``h_y / (1 + mu)`` and ``(h_j + mu) / (1 + mu)`` are Gaussian smoothings of
    [0, 1]-valued functions, so their probits are 1/sigma-Lipschitz; the mixture keeps y while the
    first exceeds the second.

    Args:
        p1: a lower confidence bound on the smoothed robust model's probability of its top class.
        p2: an upper confidence bound on the runner-up's probability (``1 - p1`` is always valid).
        alpha: weight of the smoothed robust model, in [0, 1].
        sigma: the Gaussian noise level of the smoothing (pixel units).

    The certificate is only as sound as the bounds: the caller must pass Clopper-Pearson (or
    other valid) bounds computed on samples drawn independently of the class selection, with a
    joint confidence level for p1 and p2 (docs/contracts.md, sound certificates). Returns float64 radii broadcast
    over the inputs.
    """
    p1_t = torch.as_tensor(p1, dtype=torch.float64)
    p2_t = torch.as_tensor(p2, dtype=torch.float64, device=p1_t.device)
    a = torch.as_tensor(alpha, dtype=torch.float64, device=p1_t.device)
    s = torch.as_tensor(sigma, dtype=torch.float64, device=p1_t.device)
    for name, value in (("p1", p1_t), ("p2", p2_t), ("alpha", a)):
        if bool(((value < 0) | (value > 1)).any()):
            raise ValueError(f"{name} must lie in [0, 1]")
    gap = torch.special.ndtri(a * p1_t) - torch.special.ndtri(a * p2_t + (1.0 - a))
    # inf - inf (p1 = p2 = 1 at alpha = 1) means p1 <= p2: no certificate.
    gap = torch.where(torch.isnan(gap), torch.zeros_like(gap), gap)
    radius = 0.5 * s * torch.clamp(gap, min=0.0)
    return torch.where(a > 0, radius, torch.zeros_like(radius))
