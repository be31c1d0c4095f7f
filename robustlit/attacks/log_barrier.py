"""DONE's log-barrier inner maximisation (Sow et al., ICLR 2024, eq. 7) and its threat model.

DONE smooths the inner problem of adversarial training with a log barrier of the Linf box,

    max_δ  ℓ(x + δ) − c · B(δ),   B(δ) = −Σ_k [log(ε − δ_k) + log(ε + δ_k)],

so that its maximiser is an interior point that varies smoothly with θ; as c → 0 it approaches the
PGD maximiser of the same box. :class:`LogBarrierThreatModel` is the Linf :class:`ThreatModel`
whose :meth:`~LogBarrierThreatModel.maximize` solves this problem instead of running PGD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn, RandomStart, random_start
from robustlit.attacks.threat_model import ThreatModel
from robustlit.losses.dro import log_barrier_penalty


def log_barrier_attack(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    steps: int,
    barrier_weight: float,
    random_start_kind: RandomStart = "uniform",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    boundary_fraction: float = 0.5,
    train_mode: bool = False,
) -> Tensor:
    """Maximise ℓ(x + δ) − c · B(δ), B(δ) = −Σ_k [log(ε − δ_k) + log(ε + δ_k)], keeping |δ_k| < ε strictly.

    Sign ascent of step a like PGD, with the interior-point "fraction to the boundary" rule: a
    coordinate moving towards the face ±ε advances at most ``boundary_fraction`` of its remaining
    distance, so δ never touches the box (the barrier stays finite). The start is the configured random
    start shrunk into |δ| ≤ ε/2; x + δ is clipped to ``bounds`` after each step (a projection that moves
    δ towards 0, so it stays strictly inside). As c → 0 the iterate approaches the PGD maximiser (the
    box corner for a linear model). Runs under :func:`attack_mode`; returns a detached x + δ.
    """
    if not eps > 0:
        raise ValueError(f"log_barrier_attack needs eps > 0; got {eps}")
    if not 0 < boundary_fraction < 1:
        raise ValueError(f"boundary_fraction must lie in (0, 1); got {boundary_fraction}")
    x = x.detach()
    inner = eps * (1.0 - 1e-6)  # float guard: the iterate never rounds onto the face
    with attack_mode(model, train_mode=train_mode):
        delta = (random_start(x, eps, "Linf", random_start_kind, bounds) - x).clamp(-eps / 2, eps / 2)
        if bounds is not None:
            delta = (x + delta).clamp(*bounds) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            objective = loss_fn(model(x + delta)) - log_barrier_penalty(delta, eps, barrier_weight)
            (grad,) = torch.autograd.grad(objective.sum(), delta)
            direction = grad.sign()
            room = eps - direction * delta.detach()
            step = torch.clamp(boundary_fraction * room, max=step_size)
            delta = (delta.detach() + direction * step).clamp(-inner, inner)
            if bounds is not None:
                delta = (x + delta).clamp(*bounds) - x
    return (x + delta).detach()


@dataclass(frozen=True)
class LogBarrierThreatModel(ThreatModel):
    """The Linf threat model searched by DONE's log-barrier problem (eq. 7) with barrier weight c ≥ 0."""

    barrier_weight: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm != "Linf" or not self.eps > 0:
            raise ValueError("the log_barrier inner attack needs norm: Linf and eps > 0 (a barrier of the Linf box)")
        if not self.barrier_weight >= 0:
            raise ValueError(f"barrier_weight c must be >= 0; got {self.barrier_weight}")

    def maximize(self, model: nn.Module, x: Tensor, loss_fn: LossFn, train_mode: bool = False) -> Tensor:
        """x + δ maximising ``loss_fn(model(x + δ)) − c · B(δ)`` (see :func:`log_barrier_attack`)."""
        return log_barrier_attack(
            model,
            x,
            loss_fn,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            barrier_weight=self.barrier_weight,
            random_start_kind=self.random_start,
            bounds=self.bounds,
            train_mode=train_mode,
        )
