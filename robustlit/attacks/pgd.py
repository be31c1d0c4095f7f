"""Projected gradient ascent on an arbitrary per-example loss (Madry et al. 2018; docs/evaluation.md).

Hand-written rather than taken from torchattacks because training-time inner maximisations need
losses torchattacks does not offer (TRADES' KL to the clean prediction, a DRO barrier objective,
a mixed-classifier loss that also pushes alpha), an unbounded domain for feature vectors
(torchattacks always clamps to [0, 1]), and no per-call device capture or whole-model mode
restore. It is also the ``native_pgd`` evaluation attack, in a mode that keeps every success
(see :func:`pgd_attack`); the other evaluation attacks go through torchattacks / pyautoattack
(see ``adapters.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Norm, RandomStart, per_example_norm, project, random_start
from robustlit.attacks.eval_mode import attack_mode

LossFn = Callable[[Tensor], Tensor]
#: logits (N, K) -> bool (N,): did the attack succeed on this example (e.g. misclassified)?
SuccessFn = Callable[[Tensor], Tensor]

_TINY = 1e-12


def ascent_step(x_adv: Tensor, grad: Tensor, step_size: float, norm: Norm) -> Tensor:
    """One unprojected ascent step: x + a sign(g) (Linf) or x + a g / ||g||_2 (L2; Madry et al. 2018, eq. 2)."""
    if norm == "Linf":
        return x_adv + step_size * grad.sign()
    return x_adv + step_size * grad / (per_example_norm(grad) + _TINY)


def _gradient(model: nn.Module, x_adv: Tensor, loss_fn: LossFn, eot_samples: int) -> tuple[Tensor, Tensor, Tensor]:
    """Input gradient of the loss averaged over ``eot_samples`` forward passes (Athalye et al. 2018, sec. 4.3).

    Returns (gradient, logits, loss), each averaged over the passes and detached.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    grad = torch.zeros_like(x_adv)
    logits_sum = loss_sum = 0
    for _ in range(eot_samples):
        logits = model(x_adv)
        loss = loss_fn(logits)
        (g,) = torch.autograd.grad(loss.sum(), x_adv)
        grad += g
        logits_sum, loss_sum = logits_sum + logits.detach(), loss_sum + loss.detach()
    return grad / eot_samples, logits_sum / eot_samples, loss_sum / eot_samples


def _success_mask(success: Tensor | SuccessFn) -> SuccessFn:
    if isinstance(success, Tensor):
        labels = success
        return lambda logits: logits.argmax(dim=1) != labels
    return success


def _keep_every_success(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    success: SuccessFn,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm,
    random_start_kind: RandomStart,
    bounds: tuple[float, float] | None,
    restarts: int,
    eot_samples: int,
) -> Tensor:
    """Evaluation mode of :func:`pgd_attack`: every iterate of every restart is checked for success."""
    n = x.shape[0]
    shape = (-1, *([1] * (x.dim() - 1)))
    out = x.clone()
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    best_loss = torch.full((n,), -float("inf"), device=x.device)

    def record(point: Tensor, logits: Tensor, loss: Tensor) -> None:
        nonlocal found, best_loss
        hit = success(logits) & ~found
        better = ~found & ~hit & (loss > best_loss)
        keep = hit | better
        out.copy_(torch.where(keep.view(shape), point, out))
        best_loss = torch.where(better, loss, best_loss)
        found = found | hit

    for _ in range(max(restarts, 1)):
        x_adv = random_start(x, eps, norm, random_start_kind, bounds).detach()
        for _ in range(steps):
            grad, logits, loss = _gradient(model, x_adv, loss_fn, eot_samples)
            record(x_adv, logits, loss)
            x_adv = project(ascent_step(x_adv, grad, step_size, norm), x, eps, norm, bounds)
        with torch.no_grad():
            passes = [model(x_adv) for _ in range(eot_samples)]
            record(x_adv, sum(passes) / eot_samples, sum(loss_fn(z) for z in passes) / eot_samples)
        if bool(found.all()):
            break
    return out


def pgd_attack(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "Linf",
    random_start_kind: RandomStart = "uniform",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    restarts: int = 1,
    train_mode: bool = False,
    success: Tensor | SuccessFn | None = None,
    eot_samples: int = 1,
) -> Tensor:
    """Maximise ``loss_fn(model(x'))`` over x' in B_eps(x) ∩ bounds by K projected steps (Madry et al. 2018, eq. 2).

    x^{t+1} = Proj( x^t + a · sign(∇ℓ(x^t)) )   (Linf),   a · ∇ℓ / ‖∇ℓ‖₂   (L2).

    ``loss_fn`` maps logits (N, K) to a per-example loss (N,) to maximise. Two modes:

    - inner maximisation (``success=None``, training): returns the last iterate; with several
      restarts, per example the restart with the highest final loss.
    - evaluation (``success`` = labels y, or a function logits -> bool per example such as
      :func:`~robustlit.attacks.losses.misclassified`): every iterate of every restart (the random
      start and the last point included) is checked, and per example the first successful point is
      returned; an example with no success anywhere gets its highest-loss iterate. So an example is
      robust only if every iterate of every restart fails, and robust accuracy cannot rise with
      more steps or restarts. With ``eot_samples`` > 1, success is judged on the logits averaged
      over the passes.

    ``eot_samples`` > 1 averages the input gradient over that many forward passes (expectation over
    transformation, Athalye, Carlini and Wagner 2018, sec. 4.3) for randomised models. The model
    runs under :func:`attack_mode` (eval mode, no parameter gradients) unless ``train_mode`` says
    otherwise. Returns a detached tensor.
    """
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(
            f"pgd_attack got inputs in [{x.min().item():.4g}, {x.max().item():.4g}], outside the domain "
            f"{bounds}; robustlit attacks expect un-normalised inputs (normalisation belongs inside the model)."
        )
    if eot_samples < 1:
        raise ValueError(f"eot_samples must be >= 1; got {eot_samples}")
    x = x.detach()
    if success is not None:
        with attack_mode(model, train_mode=train_mode):
            return _keep_every_success(
                model, x, loss_fn, _success_mask(success), eps, step_size, steps, norm,
                random_start_kind, bounds, restarts, eot_samples,
            ).detach()  # fmt: skip
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    with attack_mode(model, train_mode=train_mode):
        for _ in range(max(restarts, 1)):
            x_adv = random_start(x, eps, norm, random_start_kind, bounds).detach()
            for _ in range(steps):
                if eot_samples > 1:
                    grad = _gradient(model, x_adv, loss_fn, eot_samples)[0]
                else:
                    x_adv.requires_grad_(True)
                    loss = loss_fn(model(x_adv))
                    (grad,) = torch.autograd.grad(loss.sum(), x_adv)
                x_adv = project(ascent_step(x_adv.detach(), grad, step_size, norm), x, eps, norm, bounds)
            if restarts <= 1:
                return x_adv.detach()
            with torch.no_grad():
                final = loss_fn(model(x_adv))
            improved = final > best_loss
            best[improved] = x_adv[improved]
            best_loss = torch.where(improved, final, best_loss)
    return best.detach()
