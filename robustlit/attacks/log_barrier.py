"""DONE's log-barrier inner maximisation (Sow et al., ICLR 2024, eq. 7) and its threat model.

DONE smooths the inner problem of adversarial training with a log barrier of the Linf box,

    max_δ  ℓ(x + δ) − c · B(δ),   B(δ) = −Σ_k [log(ε − δ_k) + log(ε + δ_k)],

so that its maximiser is an interior point that varies smoothly with θ; as c → 0 it approaches the
PGD maximiser of the same box. :class:`LogBarrierThreatModel` is the Linf :class:`ThreatModel`
whose :meth:`~LogBarrierThreatModel.maximize` solves this problem instead of running PGD.

Two solvers (docs/reweighting.md, "The inner problem: how accurately it is solved"):

- ``tol=None`` (default): K fixed sign steps of size a (a budget like PGD's, and like the finite loop of
  projected iterations of the paper's Algorithm 1, lines 5-7; no accuracy guarantee: sign steps of fixed
  size end up oscillating at distance up to a around a maximiser);
- ``tol`` > 0 (:func:`solve_log_barrier`): sign ascent with one step size per coordinate, halved whenever
  the coordinate's partial derivative changes sign (the maximiser along it was crossed); an example has
  converged when all its step sizes are below ``tol``. At most ``max_steps`` iterations; the returned
  :class:`BarrierSolution` says which examples converged. On a separable concave objective (a linear
  model) every coordinate is then within about ``tol`` of the maximiser
  (``tests/reweighting/test_dro_adversarial_training.py`` checks it against the closed form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn, RandomStart, random_start
from robustlit.attacks.threat_model import ThreatModel


class BarrierSolution(NamedTuple):
    """``x_adv`` (detached x + δ), ``converged`` (N,) bool (step size below ``tol``), ``iterations`` used."""

    x_adv: Tensor
    converged: Tensor
    iterations: int


def log_barrier_penalty(delta: Tensor, eps: float, c: float) -> Tensor:
    """Log-barrier of the Linf box, −c Σ_k [log(ε − δ_k) + log(ε + δ_k)], one value per example.

    DONE's smoothed inner problem (Sow et al. 2024, eq. 7): the attack *minimises*
    ℓ̄(δ) = −ℓ(δ) + ``log_barrier_penalty(δ, ε, c)``. ``delta`` is (N, ...) and the sum runs over all
    non-batch dimensions. Examples with any |δ_k| ≥ ε get +inf (also for c = 0: the box is a hard
    constraint); their gradient is zero rather than NaN. The value may be negative when ε > 1/2 (only
    its gradient matters to the attack).
    """
    if not eps > 0:
        raise ValueError(f"the barrier needs eps > 0; got {eps}")
    if c < 0:
        raise ValueError(f"the barrier weight c must be >= 0; got {c}")
    flat = delta.flatten(1)
    lower_gap = eps - flat
    upper_gap = eps + flat
    inside = (lower_gap > 0) & (upper_gap > 0)
    one = torch.ones_like(flat)
    safe_log = torch.log(torch.where(inside, lower_gap, one)) + torch.log(torch.where(inside, upper_gap, one))
    penalty = -c * safe_log.sum(dim=1)
    all_inside = inside.all(dim=1)
    return torch.where(all_inside, penalty, torch.full_like(penalty, math.inf))


def _start(x: Tensor, eps: float, kind: RandomStart, bounds: Bounds) -> Tensor:
    delta = (random_start(x, eps, "Linf", kind, bounds) - x).clamp(-eps / 2, eps / 2)
    return (x + delta).clamp(*bounds) - x if bounds is not None else delta


def solve_log_barrier(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    barrier_weight: float,
    tol: float,
    max_steps: int = 200,
    random_start_kind: RandomStart = "uniform",
    bounds: Bounds = (0.0, 1.0),
    boundary_fraction: float = 0.5,
    train_mode: bool = False,
) -> BarrierSolution:
    """Maximise ℓ(x + δ) − c · B(δ) to the stated tolerance with per-coordinate step sizes (Rprop-style).

    Every coordinate k moves by its own step a_k in the direction sign(∂/∂δ_k) (fraction-to-the-boundary rule
    as in :func:`log_barrier_attack`). When the sign of its partial derivative flips, the maximiser along
    that coordinate was crossed: a_k is halved and the coordinate waits one iteration (iRprop−, Igel and
    Hüsken 2000); while the sign stays, a_k grows by 1.2 up to ``step_size``. An example has converged when
    all its a_k are below ``tol`` (it is then left alone); for a separable concave objective (a linear model)
    every coordinate is then within about ``tol`` of its maximiser. Stops after ``max_steps`` iterations
    (one forward and backward pass each) at the latest. Runs under :func:`attack_mode`.
    """
    if not eps > 0 or not tol > 0 or max_steps < 1 or not step_size > 0:
        raise ValueError("solve_log_barrier needs eps > 0, step_size > 0, tol > 0 and max_steps >= 1")
    if not 0 < boundary_fraction < 1:
        raise ValueError(f"boundary_fraction must lie in (0, 1); got {boundary_fraction}")
    x = x.detach()
    shape = (-1, *([1] * (x.dim() - 1)))
    inner = eps * (1.0 - 1e-6)
    with attack_mode(model, train_mode=train_mode):
        delta = _start(x, eps, random_start_kind, bounds)
        step = torch.full_like(x, float(step_size))
        previous = torch.zeros_like(x)
        converged = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        iterations = 0
        while iterations < max_steps:
            iterations += 1
            delta.requires_grad_(True)
            objective = loss_fn(model(x + delta)) - log_barrier_penalty(delta, eps, barrier_weight)
            (grad,) = torch.autograd.grad(objective.sum(), delta)
            delta = delta.detach()
            agreement = grad * previous
            step = torch.where(
                agreement < 0, step / 2, torch.where(agreement > 0, (step * 1.2).clamp(max=step_size), step)
            )
            grad = torch.where(agreement < 0, torch.zeros_like(grad), grad)
            converged = step.flatten(1).amax(dim=1) < tol
            if bool(converged.all()):
                break
            direction = grad.sign() * (~converged).view(shape).to(grad.dtype)
            room = eps - direction * delta
            move = torch.minimum(boundary_fraction * room, step)
            delta = (delta + direction * move).clamp(-inner, inner)
            if bounds is not None:
                delta = (x + delta).clamp(*bounds) - x
            previous = grad
    return BarrierSolution((x + delta).detach(), converged, iterations)


def log_barrier_attack(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    steps: int,
    barrier_weight: float,
    random_start_kind: RandomStart = "uniform",
    bounds: Bounds = (0.0, 1.0),
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
        delta = _start(x, eps, random_start_kind, bounds)
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
    """The Linf threat model searched by DONE's log-barrier problem (eq. 7) with barrier weight c ≥ 0.

    ``tol`` ``None``: ``steps`` fixed sign steps; ``tol`` > 0: :func:`solve_log_barrier` to that tolerance in
    at most ``max_steps`` iterations (``steps`` is then unused).
    """

    barrier_weight: float = 1e-3
    tol: float | None = None
    max_steps: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm != "Linf" or not self.eps > 0:
            raise ValueError("the log_barrier inner attack needs norm: Linf and eps > 0 (a barrier of the Linf box)")
        if not self.barrier_weight >= 0:
            raise ValueError(f"barrier_weight c must be >= 0; got {self.barrier_weight}")
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"tol must be > 0 (or None for fixed steps); got {self.tol}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1; got {self.max_steps}")

    def maximize(self, model: nn.Module, x: Tensor, loss_fn: LossFn, train_mode: bool = False) -> Tensor:
        """x + δ maximising ``loss_fn(model(x + δ)) − c · B(δ)`` (:func:`log_barrier_attack` or, with ``tol``,
        :func:`solve_log_barrier`)."""
        if self.tol is not None:
            return solve_log_barrier(
                model,
                x,
                loss_fn,
                eps=self.eps,
                step_size=self.step_size,
                barrier_weight=self.barrier_weight,
                tol=self.tol,
                max_steps=self.max_steps,
                random_start_kind=self.random_start,
                bounds=self.bounds,
                train_mode=train_mode,
            ).x_adv
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
