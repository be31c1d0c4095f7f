"""An instrumented PGD that records, per iterate and per example, what the attack-failure indicators need.

Pintor et al. (NeurIPS 2022) compute their indicators from the attack's optimisation path:
the loss and the prediction at every iterate, and the input gradient. :func:`traced_pgd` runs Madry et
al.'s (2018) PGD -- robustlit's one engine, :func:`robustlit.attacks.pgd.pgd_attack`, with a probe and a
recorder of its own -- and keeps exactly that, plus two candidate outputs: ``x_final``, what a classic PGD
returns (the last iterate of the restart with the highest final loss), and ``x_best``, a misclassifying
iterate of any restart wherever one exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds, Norm, RandomStart
from robustlit.attacks.keep import HighestFinalLoss, Iterate, KeepEverySuccess
from robustlit.attacks.pgd import pgd_attack
from robustlit.audit.objectives import AttackLoss, attack_objective

__all__ = ["AttackTrace", "Bounds", "default_step_size", "traced_pgd"]


@dataclass
class AttackTrace:
    """The path of one PGD run on N examples with R restarts and T steps.

    Attributes:
        loss: (R, T+1, N) objective at the iterates x^0 .. x^T.
        misclassified: (R, T+1, N) whether the iterate is misclassified.
        grad_norm: (R, T, N) norm of the input gradient used for step t (0 where non-finite).
        grad_finite: (R, T, N) whether that gradient is finite everywhere.
        graph_interrupted: the objective did not depend differentiably on the input at all.
        x_final: last iterate of the restart with the highest final loss (classic PGD output).
        x_best: a misclassifying iterate where any exists, else ``x_final``.
    """

    loss: Tensor
    misclassified: Tensor
    grad_norm: Tensor
    grad_finite: Tensor
    graph_interrupted: bool
    x_final: Tensor
    x_best: Tensor
    final_misclassified: Tensor

    @property
    def broken(self) -> Tensor:
        """(N,) some iterate of some restart is misclassified (the per-example worst case)."""
        return self.misclassified.flatten(0, 1).any(dim=0)

    @property
    def grad_unavailable(self) -> Tensor:
        """(R, T, N) the step-t gradient is exactly zero or not finite."""
        return (~self.grad_finite) | (self.grad_norm == 0)


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s (2018) rule: 2.5 * eps / steps."""
    return 2.5 * eps / max(steps, 1)


def _flat_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


def _gradient(
    model: nn.Module, x_adv: Tensor, y: Tensor, loss: AttackLoss, eot: int, input_noise: float
) -> tuple[Tensor, bool]:
    """Input gradient of the objective, averaged over ``eot`` forward passes (with Gaussian input noise)."""
    total = torch.zeros_like(x_adv)
    interrupted = False
    for _ in range(eot):
        point = x_adv.detach().clone().requires_grad_(True)
        noisy = point + input_noise * torch.randn_like(point) if input_noise > 0 else point
        objective = attack_objective(loss, model(noisy), y)
        if not objective.requires_grad:
            interrupted = True
            continue
        (grad,) = torch.autograd.grad(objective.sum(), point, allow_unused=True)
        if grad is None:
            interrupted = True
            continue
        total += grad
    return total / eot, interrupted


class _Tracer:
    """Probe and recorder of :func:`traced_pgd`: evaluates each iterate the way the indicators need and keeps
    the path. The loss and prediction are those of one clean forward pass; the gradient is averaged over
    ``eot`` passes (with input noise), and a non-finite one is recorded, then replaced by 0 for the step."""

    def __init__(
        self, model: nn.Module, x: Tensor, y: Tensor, loss: AttackLoss, eot: int, input_noise: float, shape: tuple
    ) -> None:
        self.model, self.y, self.objective, self.eot, self.input_noise = model, y, loss, eot, input_noise
        restarts, steps, n = shape
        self.losses = torch.zeros(restarts, steps + 1, n, device=x.device)
        self.wrong = torch.zeros(restarts, steps + 1, n, dtype=torch.bool, device=x.device)
        self.grad_norm = torch.zeros(restarts, steps, n, device=x.device)
        self.grad_finite = torch.ones(restarts, steps, n, dtype=torch.bool, device=x.device)
        self.interrupted = False
        self.first_success = KeepEverySuccess(self.y)  # x_best: the first misclassifying iterate
        self.first_success.start(x)

    def probe(self, x_adv: Tensor, want_gradient: bool) -> tuple[Tensor | None, Tensor, Tensor]:
        with torch.no_grad():
            logits = self.model(x_adv)
            loss = attack_objective(self.objective, logits, self.y).float()
        if not want_gradient:
            return None, logits, loss
        grad, cut = _gradient(self.model, x_adv, self.y, self.objective, self.eot, self.input_noise)
        self.interrupted |= cut
        self._finite = torch.isfinite(grad).flatten(1).all(dim=1)
        self._norm = torch.where(self._finite, _flat_norm(torch.nan_to_num(grad)), 0.0)
        return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0), logits, loss  # never step to NaN

    def record(self, iterate: Iterate) -> None:
        r, t = iterate.restart, iterate.step
        self.losses[r, t] = iterate.loss
        self.wrong[r, t] = iterate.logits.argmax(dim=1) != self.y
        self.first_success.observe(iterate)
        if iterate.grad is not None:
            self.grad_finite[r, t], self.grad_norm[r, t] = self._finite, self._norm


def traced_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: Norm,
    eps: float,
    steps: int,
    step_size: float | None = None,
    bounds: Bounds = (0.0, 1.0),
    restarts: int = 1,
    loss: AttackLoss = "ce",
    random_start: RandomStart = "uniform",
    eot: int = 1,
    input_noise: float = 0.0,
) -> AttackTrace:
    """Run PGD on ``(x, y)`` under :func:`~robustlit.attacks.eval_mode.attack_mode` and record its path (see
    :class:`AttackTrace`).

    ``eot > 1`` averages the gradient over that many forward passes (expectation over transformation,
    Athalye et al. 2018), with Gaussian input noise of std ``input_noise`` if positive;
    losses and predictions are always recorded on the un-noised iterate.
    """
    if steps < 0 or restarts < 1 or eot < 1:
        raise ValueError(f"need steps >= 0, restarts >= 1, eot >= 1; got {steps}, {restarts}, {eot}")
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    x, y = x.detach(), y.detach()
    tracer = _Tracer(model, x, y, loss, eot, input_noise, (restarts, steps, x.shape[0]))
    classic = HighestFinalLoss()  # x_final: classic PGD keeps the restart with the highest final loss
    objective = lambda logits: attack_objective(loss, logits, y)  # noqa: E731 - unused: the tracer probes
    x_final = pgd_attack(
        model, x, objective, eps, step_size, steps, norm, random_start, bounds, restarts,
        keep=classic, recorder=tracer.record, probe=tracer.probe,
    )  # fmt: skip
    found = tracer.first_success.found
    x_best = torch.where(found.view(-1, *([1] * (x.dim() - 1))), tracer.first_success.result(), x_final)
    chosen = classic.restart.clamp(min=0)
    final_wrong = tracer.wrong[chosen, steps, torch.arange(x.shape[0], device=x.device)] & (classic.restart >= 0)
    return AttackTrace(
        loss=tracer.losses,
        misclassified=tracer.wrong,
        grad_norm=tracer.grad_norm,
        grad_finite=tracer.grad_finite,
        graph_interrupted=tracer.interrupted,
        x_final=x_final,
        x_best=x_best.detach(),
        final_misclassified=final_wrong,
    )
