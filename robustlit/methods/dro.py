"""DRO-AT: doubly-robust instance-reweighted adversarial training (DONE, Sow et al., ICLR 2024; docs/reweighting.md).

The outer problem weights the per-example adversarial losses ℓ_i by the solution of a KL-regularised
DRO problem, max_{w ∈ Δ} Σ w_i ℓ_i − r KL(w ‖ uniform), i.e. w* = softmax(ℓ / r). Its value is
r log mean_i exp(ℓ_i / r), a composition f(g(θ)); the minibatch plug-in gradient is biased, so a
running estimate u_t of g = mean exp(ℓ / r) is kept across batches (SCGD, the "compositional" part):

    u_t = (1 − τ) u_{t−1} + τ · mean_{i∈B} exp(ℓ_i / r),   loss = (1/|B|) Σ_i ω_i ℓ_i,   ω_i = exp(ℓ_i / r) / u_t

(:class:`robustlit.losses.dro.RunningNormaliser`; docs/reweighting.md). r → ∞ (``temperature: null``
or ``.inf``) gives uniform weights, i.e. exactly plain PGD-AT / TRADES.

The inner attack is PGD, or (``inner_attack: log_barrier``) DONE's smoothed inner problem
min_δ −ℓ(x + δ) − c Σ_k [log(ε − δ_k) + log(ε + δ_k)] (Sow et al. 2024, Eq. 7), solved by
:func:`log_barrier_attack`.

Deliberate simplification: the gradient treats x' as a constant (Danskin / first-order, as plain AT
does); DONE's implicit-differentiation correction of the hypergradient (Sow et al. 2024; docs/reweighting.md) is
not implemented.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveFloat
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn, RandomStart, random_start
from robustlit.losses.dro import RunningNormaliser, log_barrier_penalty, weighted_mean
from robustlit.methods.instance_reweighted import InstanceReweightedAT
from robustlit.utils.distributed import world

InnerAttack = Literal["pgd", "log_barrier"]


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


class DROAdversarialTraining(InstanceReweightedAT):
    """Adversarial training whose per-example weights solve a KL-regularised DRO problem (DONE).

    Args:
        temperature: DRO temperature r > 0; ``null`` or ``.inf`` (``inf`` on the command line) gives uniform
            weights, i.e. plain PGD-AT / TRADES.
        momentum: τ ∈ [0, 1] of the running normaliser u_t (1 = plug-in minibatch estimate).
        normalise_weights: rescale ω to mean 1 per batch (the plug-in weights |B|·softmax(ℓ/r); the
            running estimate then no longer affects the gradient). Default: SCGD weights as they are.
        inner_attack: ``pgd`` or ``log_barrier`` (Linf only).
        barrier_weight: c ≥ 0 of the log-barrier attack.
        **kwargs: see :class:`InstanceReweightedAT` (base_loss, beta, begin_epoch) and
            :class:`AdversarialTraining` (eps, step_size, steps, ...).

    Under DDP the per-example losses are all-gathered before updating u_t, so every rank keeps the
    same normaliser (the global batch is the minibatch). Logs ``train/dro/log_u`` and
    ``train/dro/omega_mean`` (the batch mean of ω: how hard this batch is relative to the running
    average) besides the weight statistics of :class:`InstanceReweightedAT`.
    """

    def __init__(
        self,
        temperature: PositiveFloat | None = 1.0,
        momentum: ClosedUnitInterval = 0.1,
        normalise_weights: bool = False,
        inner_attack: InnerAttack = "pgd",
        barrier_weight: NonNegativeFloat = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature r must be > 0 (or null / .inf for uniform weights); got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum tau must lie in [0, 1]; got {momentum}")
        if inner_attack not in ("pgd", "log_barrier"):
            raise ValueError(f"inner_attack must be 'pgd' or 'log_barrier'; got {inner_attack!r}")
        if inner_attack == "log_barrier" and (self.norm != "Linf" or self.eps <= 0):
            raise ValueError(
                "inner_attack 'log_barrier' needs norm: Linf and eps > 0 (it is a barrier of the Linf box)"
            )
        if barrier_weight < 0:
            raise ValueError(f"barrier_weight c must be >= 0; got {barrier_weight}")
        self.temperature = math.inf if temperature is None else float(temperature)
        self.momentum, self.inner_attack, self.barrier_weight = momentum, inner_attack, barrier_weight
        self.normaliser = RunningNormaliser(normalise_weights=normalise_weights)

    @property
    def uniform(self) -> bool:
        return math.isinf(self.temperature)

    def run_attack(self, x: Tensor, objective: LossFn) -> Tensor:
        if self.inner_attack == "pgd":
            return self.perturb(x, objective)
        return log_barrier_attack(
            self.classifier,
            x,
            objective,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            barrier_weight=self.barrier_weight,
            random_start_kind=self.random_start,
            bounds=self.bounds,
            train_mode=self.attack_train_mode,
        )

    def dro_weights(self, losses: Tensor) -> Tensor:
        """SCGD weights ω_i = exp(ℓ_i / r) / u_t after folding this (global) batch into u_t; detached."""
        rank, size = world()
        if size == 1:
            return self.normaliser.update(losses, self.temperature, self.momentum)
        gathered = self.all_gather(losses.detach())
        omega = self.normaliser.update(gathered.reshape(-1), self.temperature, self.momentum)
        return omega.view(size, -1)[rank]

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """(1/|B|) Σ_i ω_i ℓ_i with ℓ_i the PGD-AT or TRADES per-example loss (plain mean when r = ∞)."""
        batch = self.adversarial_batch(x, y)
        losses = batch.losses
        if self.uniform or not self.weights_active():
            self.log_weight_statistics(torch.ones_like(losses))
            return losses.mean()
        omega = self.dro_weights(losses)
        self.log_weight_statistics(omega)
        if self._trainer is not None:
            self.log("train/dro/log_u", self.normaliser.log_u, on_step=False, on_epoch=True, sync_dist=True)
            self.log(
                "train/dro/omega_mean", omega.mean(), on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True
            )
        return weighted_mean(losses, omega)
