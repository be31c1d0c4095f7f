"""Projected gradient ascent on an arbitrary per-example loss (Madry et al. 2018; docs/adversarial_training.md).

Hand-written rather than taken from torchattacks because training-time inner maximisations need
losses torchattacks does not offer (TRADES' KL to the clean prediction, a DRO barrier objective,
a mixed-classifier loss that also pushes alpha), an unbounded domain for feature vectors
(torchattacks always clamps to [0, 1]), and no per-call device capture or whole-model mode
restore. Evaluation attacks go through torchattacks / pyautoattack (see ``registry.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.threat_model import Norm

LossFn = Callable[[Tensor], Tensor]
RandomStart = Literal["uniform", "gaussian", "none"]

_TINY = 1e-12


def _per_example_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: Tensor, x: Tensor, eps: float, norm: Norm, bounds: tuple[float, float] | None) -> Tensor:
    """Euclidean projection onto B_eps(x) ∩ bounds (sequential clipping is exact for Linf boxes)."""
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        factor = (eps / (_per_example_norm(delta) + _TINY)).clamp(max=1.0)
        delta = delta * factor
    x_adv = x + delta
    if bounds is not None:
        x_adv = x_adv.clamp(*bounds)
    return x_adv


def random_start(x: Tensor, eps: float, norm: Norm, kind: RandomStart, bounds: tuple[float, float] | None) -> Tensor:
    """Initial point: uniform in the ball (Madry), x + 0.001 N(0, I) (TRADES), or x itself."""
    if kind == "none" or eps == 0:
        return x.clone()
    if kind == "gaussian":
        return x + 0.001 * torch.randn_like(x)
    if norm == "Linf":
        start = x + torch.empty_like(x).uniform_(-eps, eps)
    else:
        direction = torch.randn_like(x)
        direction = direction / (_per_example_norm(direction) + _TINY)
        radius = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
        start = x + eps * radius * direction
    return project(start, x, eps, norm, bounds)


def _ascent_step(x_adv: Tensor, grad: Tensor, step_size: float, norm: Norm) -> Tensor:
    if norm == "Linf":
        return x_adv + step_size * grad.sign()
    return x_adv + step_size * grad / (_per_example_norm(grad) + _TINY)


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
) -> Tensor:
    """Maximise ``loss_fn(model(x'))`` over x' in B_eps(x) ∩ bounds by K projected steps.

    x^{t+1} = Proj( x^t + a · sign(∇ℓ(x^t)) )   (Linf),   a · ∇ℓ / ‖∇ℓ‖₂   (L2).

    ``loss_fn`` maps logits (N, K) to a per-example loss (N,) to maximise. With several restarts the
    per-example iterate with the highest final loss is kept. The model runs under
    :func:`attack_mode` (eval mode, no parameter gradients) unless ``train_mode`` says otherwise.
    Returns a detached tensor.
    """
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(
            f"pgd_attack got inputs in [{x.min().item():.4g}, {x.max().item():.4g}], outside the domain "
            f"{bounds}; robustlit attacks expect un-normalised inputs (normalisation belongs inside the model)."
        )
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    with attack_mode(model, train_mode=train_mode):
        for _ in range(max(restarts, 1)):
            x_adv = random_start(x, eps, norm, random_start_kind, bounds).detach()
            for _ in range(steps):
                x_adv.requires_grad_(True)
                loss = loss_fn(model(x_adv))
                (grad,) = torch.autograd.grad(loss.sum(), x_adv)
                x_adv = project(_ascent_step(x_adv.detach(), grad, step_size, norm), x, eps, norm, bounds)
            if restarts <= 1:
                return x_adv.detach()
            with torch.no_grad():
                final = loss_fn(model(x_adv))
            improved = final > best_loss
            best[improved] = x_adv[improved]
            best_loss = torch.where(improved, final, best_loss)
    return best.detach()
