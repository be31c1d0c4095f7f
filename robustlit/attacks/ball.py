"""The set an attack searches, B_ε(x) ∩ bounds: its vocabulary, the projection onto it, a random point in it.

A leaf of :mod:`robustlit.attacks`: the threat model (:mod:`~robustlit.attacks.threat_model`), the
projected-gradient engine (:mod:`~robustlit.attacks.pgd`), the log-barrier attack, the audit and the
mixed-classifier attacks all spell the norm, the input domain and the random start with these names.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
from torch import Tensor

#: Lp norm of the perturbation ball; all radii are in [0, 1] pixel units (docs/contracts.md).
Norm = Literal["Linf", "L2"]
#: Initial point of the search: uniform in the ball (Madry), x + 0.001 N(0, I) (TRADES), or x itself.
RandomStart = Literal["uniform", "gaussian", "none"]
#: The input domain (low, high) every attack clips to; ``None``: unbounded (feature vectors).
Bounds: TypeAlias = tuple[float, float] | None

_TINY = 1e-12


def per_example_norm(t: Tensor) -> Tensor:
    """||t_i||_2 of every example, shaped (N, 1, ..., 1) to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: Tensor, x: Tensor, eps: float, norm: Norm, bounds: Bounds) -> Tensor:
    """Euclidean projection onto B_eps(x) ∩ bounds (sequential clipping is exact for Linf boxes)."""
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        factor = (eps / (per_example_norm(delta) + _TINY)).clamp(max=1.0)
        delta = delta * factor
    x_adv = x + delta
    if bounds is not None:
        x_adv = x_adv.clamp(*bounds)
    return x_adv


def random_start(x: Tensor, eps: float, norm: Norm, kind: RandomStart, bounds: Bounds) -> Tensor:
    """Initial point: uniform in the ball (Madry), x + 0.001 N(0, I) (TRADES), or x itself."""
    if kind == "none" or eps == 0:
        return x.clone()
    if kind == "gaussian":
        return x + 0.001 * torch.randn_like(x)
    if norm == "Linf":
        start = x + torch.empty_like(x).uniform_(-eps, eps)
    else:
        direction = torch.randn_like(x)
        direction = direction / (per_example_norm(direction) + _TINY)
        radius = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
        start = x + eps * radius * direction
    return project(start, x, eps, norm, bounds)
