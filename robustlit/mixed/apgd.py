"""APGD through alpha: the mixed classifier's adaptive attack, per-example budgets, CE or targeted DLR.

Croce and Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", sec. 3 (APGD: momentum 0.75, step size halved at checkpoints when the loss stalls,
restart from the best point), applied to a mixed classifier as Bai et al. (2023, arXiv 2301.12554) do both
to train the mixing network and to evaluate it: the objective ``(1 - w) L + w BCE(gamma, 1)`` pushes the
mixing logit towards the standard model. ``L`` is the mixture's cross-entropy (APGD-CE) or the targeted DLR
loss (APGD-T, eq. 6) with a target among the top classes. Every parameter may differ per example (eps,
iterations, w, loss, target), which is what the training-time randomisation needs. Evaluation mode keeps,
per example, a misclassifying iterate of any restart (docs/evaluation.md). Pure torch, no Lightning.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.threat_model import Norm
from robustlit.mixed.adaptive_attack import GAMMA_CLAMP

__all__ = ["apgd_checkpoints", "mixture_apgd", "mixture_attack_loss", "probability_margin"]

_TINY = 1e-12


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step (Croce and Hein 2020, sec. 3.2): ``ceil(p_j * steps)``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(-(-q * steps // 1)) for q in p[1:] if q <= 1})


def probability_margin(log_probs: Tensor, y: Tensor) -> Tensor:
    """``p_y - max_{k != y} p_k`` (N,) of ``p = softmax(log_probs)``: positive iff the prediction is ``y``.

    Bai et al. (2024), MixedNUTS, keep per example the attack iterate with the smallest such margin.
    """
    p = log_probs.softmax(dim=1)
    p_y = p.gather(1, y[:, None]).squeeze(1)
    others = p.scatter(1, y[:, None], -torch.inf)
    return p_y - others.max(dim=1).values


def _as_column(value: float | Tensor, n: int, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(n).clone()


def mixture_attack_loss(
    log_probs: Tensor, gamma_logit: Tensor, y: Tensor, w: Tensor, targeted: Tensor, target: Tensor
) -> Tensor:
    """Per-example ``(1 - w) L + w BCE(gamma, 1)``; ``L`` = CE, or targeted DLR (Croce and Hein 2020, eq. 6)
    where ``targeted``; to maximise."""
    ce = F.cross_entropy(log_probs, y, reduction="none")
    z = log_probs
    top = z.sort(dim=1, descending=True).values
    z_y, z_t = z.gather(1, y[:, None]).squeeze(1), z.gather(1, target[:, None]).squeeze(1)
    scale = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) if z.shape[1] >= 4 else top[:, 0] - top[:, -1]
    dlr_t = -(z_y - z_t) / (scale + _TINY)
    gamma = gamma_logit.clamp(-GAMMA_CLAMP, GAMMA_CLAMP)
    bce = F.binary_cross_entropy_with_logits(gamma, torch.ones_like(gamma), reduction="none")
    return (1 - w) * torch.where(targeted, dlr_t, ce) + w * bce


def _project(x_adv: Tensor, x: Tensor, eps: Tensor, norm: Norm, bounds: tuple[float, float] | None) -> Tensor:
    shape = (-1, *([1] * (x.dim() - 1)))
    delta = x_adv - x
    if norm == "Linf":
        e = eps.view(shape)
        delta = torch.maximum(torch.minimum(delta, e), -e)
    else:
        length = delta.flatten(1).norm(dim=1)
        delta = delta * (eps / (length + _TINY)).clamp(max=1.0).view(shape)
    x_adv = x + delta
    return x_adv.clamp(*bounds) if bounds is not None else x_adv


def _step(grad: Tensor, norm: Norm) -> Tensor:
    if norm == "Linf":
        return grad.sign()
    return grad / (grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.dim() - 1))) + _TINY)


def mixture_apgd(
    mixture: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int | Tensor,
    norm: Norm = "Linf",
    bce_weight: float | Tensor = 0.0,
    targeted: bool | Tensor = False,
    target_rank: int | Tensor = 1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    restarts: int = 1,
    momentum: float = 0.75,
    evaluation: bool = True,
    surrogate: bool = False,
    keep: Literal["misclassified", "min_margin"] = "misclassified",
) -> Tensor:
    """APGD (Croce and Hein 2020) on ``mixture.forward_with_alpha``: maximise :func:`mixture_attack_loss`.

    ``eps``, ``steps``, ``bce_weight``, ``targeted`` and ``target_rank`` (target = the class of that rank in
    the clean prediction, 1 = runner-up) are scalars or (N,) tensors; example i stops after its own
    ``steps[i]`` iterations with its own checkpoints. Uniform random start. ``evaluation=True`` keeps per
    example a misclassifying iterate of any restart if there is one (else the highest-loss one), so robust
    accuracy never rises with steps or restarts; ``evaluation=False`` (training) returns the highest-loss
    iterate. ``surrogate=True`` takes gradients from ``mixture.forward_with_alpha(x, surrogate=True)`` (a
    differentiable stand-in for non-differentiable steps, e.g. MixedNUTS' hard max) while success is judged
    on the exact forward. ``keep="min_margin"`` (evaluation only) returns per example the iterate, of any
    restart and the clean input included, with the smallest :func:`probability_margin` of the exact output
    (the iterate MixedNUTS' calibration keeps, Bai et al. 2024); a misclassifying iterate has a negative
    margin, so this too keeps every success. Runs under ``attack_mode`` (eval-mode modules, no parameter
    gradients); the caller
    chooses the mixing network's head (``MixedClassifier.gamma_head``). Returns detached x_adv.
    """
    if keep not in ("misclassified", "min_margin"):
        raise ValueError(f"mixture_apgd keep must be 'misclassified' or 'min_margin'; got {keep!r}")
    min_margin = evaluation and keep == "min_margin"
    n = x.shape[0]
    x = x.detach()
    eps_t = _as_column(eps, n, x).float()
    steps_t = torch.as_tensor(steps, device=x.device).expand(n).long()
    w = _as_column(bce_weight, n, x).float()
    is_targeted = torch.as_tensor(targeted, device=x.device).expand(n).bool()
    rank = torch.as_tensor(target_rank, device=x.device).expand(n).long()
    max_steps = int(steps_t.max().item()) if n else 0
    shape = (-1, *([1] * (x.dim() - 1)))
    checkpoint = torch.zeros(n, max_steps + 1, dtype=torch.bool, device=x.device)
    for k in steps_t.unique().tolist():
        rows = steps_t == k
        for c in apgd_checkpoints(int(k)):
            checkpoint[rows, min(c, max_steps)] = True

    def forward(point: Tensor, with_surrogate: bool) -> tuple[Tensor, Tensor]:
        if with_surrogate:
            log_probs, _, gamma = mixture.forward_with_alpha(point, surrogate=True)
        else:
            log_probs, _, gamma = mixture.forward_with_alpha(point)
        return log_probs, gamma

    best = x.clone()
    best_loss = torch.full((n,), -torch.inf, device=x.device)
    fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    with attack_mode(mixture):
        with torch.no_grad():
            clean_log_probs = forward(x, False)[0]
        best_margin = probability_margin(clean_log_probs, y)  # the clean input counts as an iterate
        rank = rank.clamp(1, clean_log_probs.shape[1] - 1)
        target = clean_log_probs.argsort(dim=1, descending=True).gather(1, rank[:, None]).squeeze(1)

        def evaluate(point: Tensor) -> tuple[Tensor, Tensor]:
            """(loss to maximise, gradient) at ``point``; records successes on the exact forward."""
            point = point.detach().requires_grad_(True)
            log_probs, gamma = forward(point, surrogate)
            loss = mixture_attack_loss(log_probs, gamma, y, w, is_targeted, target)
            (grad,) = torch.autograd.grad(loss.sum(), point)
            with torch.no_grad():
                exact = forward(point, False)[0] if surrogate else log_probs
                wrong = exact.argmax(dim=1) != y if evaluation else torch.zeros_like(fooled)
                if min_margin:
                    margin = probability_margin(exact, y)
                    take = margin < best_margin
                    best_margin.copy_(torch.minimum(margin, best_margin))
                else:
                    take = (wrong & ~fooled) | ((wrong == fooled) & (loss > best_loss))
                best.copy_(torch.where(take.view(shape), point.detach(), best))
                best_loss.copy_(torch.where(take, loss.detach(), best_loss))
                fooled.logical_or_(wrong)
            return loss.detach(), grad

        for _ in range(max(restarts, 1)):
            start = x + (2 * torch.rand_like(x) - 1) * eps_t.view(shape)
            current = _project(start, x, eps_t, norm, bounds)
            loss, grad = evaluate(current)
            run_best, run_best_loss, run_best_grad = current.clone(), loss.clone(), grad.clone()
            size = 2 * eps_t
            previous = current.clone()
            improved = torch.zeros(n, device=x.device)
            loss_at_checkpoint, size_reduced, last_checkpoint = loss.clone(), torch.ones(n, dtype=torch.bool), 0
            size_reduced = size_reduced.to(x.device)
            for k in range(max_steps):
                active = (k < steps_t).view(shape)
                z = _project(current + size.view(shape) * _step(grad, norm), x, eps_t, norm, bounds)
                a = 1.0 if k == 0 else momentum
                proposal = _project(
                    current + a * (z - current) + (1 - a) * (current - previous), x, eps_t, norm, bounds
                )
                proposal = torch.where(active, proposal, current)
                previous, current = current, proposal
                loss_new, grad = evaluate(current)
                improved += (loss_new > loss).float()
                loss = loss_new
                better = loss > run_best_loss
                run_best = torch.where(better.view(shape), current, run_best)
                run_best_grad = torch.where(better.view(shape), grad, run_best_grad)
                run_best_loss = torch.where(better, loss, run_best_loss)
                at = checkpoint[:, k + 1] & active.view(-1)
                if bool(at.any()):
                    span = max(k + 1 - last_checkpoint, 1)
                    stalled = (improved < 0.75 * span) | (~size_reduced & (loss_at_checkpoint >= run_best_loss))
                    halve = at & stalled
                    size = torch.where(halve, size / 2, size)
                    current = torch.where(halve.view(shape), run_best, current)
                    grad = torch.where(halve.view(shape), run_best_grad, grad)
                    size_reduced = torch.where(at, halve, size_reduced)
                    loss_at_checkpoint = torch.where(at, run_best_loss, loss_at_checkpoint)
                    improved = torch.where(at, torch.zeros_like(improved), improved)
                    last_checkpoint = k + 1
            if evaluation and not min_margin and bool(fooled.all()):
                break
    return best.detach()
