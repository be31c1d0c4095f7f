"""An instrumented PGD that records, per iterate and per example, what the attack-failure indicators need.

Pintor et al. (NeurIPS 2022) compute their indicators from the attack's optimisation path:
the loss and the prediction at every iterate, and the input gradient. :func:`traced_pgd` runs Madry et
al.'s (2018) PGD (Linf sign steps or L2 normalised steps, projected onto the eps-ball and the box)
and keeps exactly that, plus two candidate outputs: ``x_final``, what a classic PGD returns (the last
iterate of the restart with the highest final loss), and ``x_best``, a misclassifying iterate of any
restart wherever one exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import ascent_step, project, random_start
from robustlit.attacks.threat_model import Norm
from robustlit.audit.objectives import AttackLoss, attack_objective

Bounds = tuple[float, float] | None


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
    random_init: bool = True,
    eot: int = 1,
    input_noise: float = 0.0,
) -> AttackTrace:
    """Run PGD on ``(x, y)`` under :func:`attack_mode` and record its path (see :class:`AttackTrace`).

    ``eot > 1`` averages the gradient over that many forward passes (expectation over transformation,
    Athalye et al. 2018), with Gaussian input noise of std ``input_noise`` if positive;
    losses and predictions are always recorded on the un-noised iterate.
    """
    if steps < 0 or restarts < 1 or eot < 1:
        raise ValueError(f"need steps >= 0, restarts >= 1, eot >= 1; got {steps}, {restarts}, {eot}")
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    x, y = x.detach(), y.detach()
    n = x.shape[0]
    losses = torch.zeros(restarts, steps + 1, n, device=x.device)
    wrong = torch.zeros(restarts, steps + 1, n, dtype=torch.bool, device=x.device)
    grad_norm = torch.zeros(restarts, steps, n, device=x.device)
    grad_finite = torch.ones(restarts, steps, n, dtype=torch.bool, device=x.device)
    x_best, x_final = x.clone(), x.clone()
    best_found = torch.zeros(n, dtype=torch.bool, device=x.device)
    final_loss = torch.full((n,), -float("inf"), device=x.device)
    final_wrong = torch.zeros(n, dtype=torch.bool, device=x.device)
    interrupted = False
    with attack_mode(model):
        for r in range(restarts):
            kind = "uniform" if random_init else "none"
            x_adv = random_start(x, eps, norm, kind, bounds).detach()
            for t in range(steps + 1):
                with torch.no_grad():
                    logits = model(x_adv)
                    losses[r, t] = attack_objective(loss, logits, y).float()
                    wrong[r, t] = logits.argmax(dim=1) != y
                new = wrong[r, t] & ~best_found
                x_best[new], best_found = x_adv[new], best_found | new
                if t == steps:
                    break
                grad, cut = _gradient(model, x_adv, y, loss, eot, input_noise)
                interrupted |= cut
                finite = torch.isfinite(grad).flatten(1).all(dim=1)
                grad_finite[r, t] = finite
                grad_norm[r, t] = torch.where(finite, _flat_norm(torch.nan_to_num(grad)), 0.0)
                safe_grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)  # never step to NaN
                x_adv = project(ascent_step(x_adv, safe_grad, step_size, norm), x, eps, norm, bounds).detach()
            # classic PGD keeps the restart with the highest final loss (NaN never wins)
            better = losses[r, steps] > final_loss
            x_final[better] = x_adv[better]
            final_loss = torch.where(better, losses[r, steps], final_loss)
            final_wrong = torch.where(better, wrong[r, steps], final_wrong)
    x_best[~best_found] = x_final[~best_found]
    return AttackTrace(
        loss=losses,
        misclassified=wrong,
        grad_norm=grad_norm,
        grad_finite=grad_finite,
        graph_interrupted=interrupted,
        x_final=x_final.detach(),
        x_best=x_best.detach(),
        final_misclassified=final_wrong,
    )
