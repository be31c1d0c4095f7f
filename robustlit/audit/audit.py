"""Audit one attack on a subset: run it instrumented and compute every attack-failure indicator.

Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of Adversarial
Examples" (NeurIPS 2022); Carlini et al., "On Evaluating Adversarial Robustness" (2019); docs/audit.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.threat_model import Norm
from robustlit.audit import indicators as ind
from robustlit.audit.indicators import AuditThresholds
from robustlit.audit.objectives import AttackLoss
from robustlit.audit.report import AuditReport
from robustlit.audit.trace import Bounds, default_step_size, traced_pgd

AttackFn = Callable[[Tensor, Tensor], Tensor]


class AttackFactory(Protocol):
    """Builds the audited attack for a budget: ``factory(eps=..., steps=..., restarts=...)(x, y) -> x_adv``."""

    def __call__(self, *, eps: float, steps: int, restarts: int) -> AttackFn: ...


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Predicted labels under :func:`attack_mode` (eval mode), without gradients."""
    with attack_mode(model), torch.no_grad():
        return model(x).argmax(dim=1)


def default_unbounded_eps(x: Tensor, norm: Norm, eps: float, bounds: Bounds) -> float:
    """The whole box for bounded inputs (its Linf diameter, or the L2 one: width * sqrt(d)); 1000 * eps otherwise."""
    if bounds is None:
        return 1e3 * eps
    width = bounds[1] - bounds[0]
    return width if norm == "Linf" else width * math.sqrt(x[0].numel())


def default_name(norm: Norm, eps: float, steps: int, restarts: int) -> str:
    budget = f"{steps}x{restarts}" if restarts > 1 else f"{steps}"
    return f"pgd{budget}_{norm.lower()}_{eps:.4g}"


def _inside(x_adv: Tensor, x: Tensor, norm: Norm, eps: float, bounds: Bounds, tol: float = 1e-5) -> Tensor:
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "Linf" else delta.norm(dim=1)
    ok = size <= eps + tol
    if bounds is not None:
        flat = x_adv.flatten(1)
        ok &= (flat >= bounds[0] - 1e-6).all(dim=1) & (flat <= bounds[1] + 1e-6).all(dim=1)
    return ok


def _square_broken(model: nn.Module, x: Tensor, y: Tensor, norm: Norm, eps: float, queries: int, seed: int) -> Tensor:
    """Andriushchenko et al.'s (2020) Square attack (torchattacks, margin loss) on [0, 1] inputs."""
    import torchattacks

    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        attack = torchattacks.Square(model, norm=norm, eps=eps, n_queries=queries, n_restarts=1, seed=seed)
        with attack_mode(model):
            x_adv = attack(x, y).detach()
    return (predict(model, x_adv) != y) & _inside(x_adv, x, norm, eps, (0.0, 1.0))


def audit_attack(
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
    num_classes: int,
    loss: AttackLoss = "ce",
    name: str | None = None,
    attack_factory: AttackFactory | None = None,
    square_queries: int = 5000,
    eot_samples: int = 4,
    transfer_noise: float | None = None,
    unbounded_eps: float | None = None,
    check_monotone: bool = True,
    thresholds: AuditThresholds | None = None,
    seed: int = 0,
) -> AuditReport:
    """Audit an attack on ``(x, y)`` (one batch, a few hundred examples) and report its indicators.

    The audited attack is ``attack_factory(eps=, steps=, restarts=)`` when given (e.g. an adapter built
    from an ``AttackSpec``), else classic PGD as :func:`traced_pgd` runs it (last iterate, highest-loss
    restart). In both cases a traced PGD with the same norm, eps, steps, step size, restarts and loss
    supplies the optimisation path. Indicators (docs/audit.md):

    - ``silent_success``: the traced path misclassified an example the audited attack reports as robust;
    - ``incomplete_optimisation``: on unbroken examples the loss still rises in the last 10% of steps;
    - ``unavailable_gradients``: zero or non-finite input gradients;
    - ``unconstrained_failure``: with ``unbounded_eps`` (default: the whole box) PGD from the clean point
      breaks fewer than 99% of the correctly classified examples;
    - ``non_monotone``: robust accuracy rises from steps/2 to steps, from 1 to ``restarts`` restarts, or
      from eps/2 to eps (each run from the same seed; off with ``check_monotone=False``);
    - ``transfer_success``: Square (``square_queries`` queries; [0, 1] images (N, C, H, W) only, 0 to skip) or a
      margin-loss PGD with gradients averaged over ``eot_samples`` noisy passes (std ``transfer_noise``,
      default eps/4 per coordinate for Linf, eps/(4 sqrt(d)) for L2) breaks examples declared robust.

    Cost: the traced PGD, the unbounded PGD and up to three budget variants (each a PGD run of at most
    the full budget), one EOT run (``eot_samples`` passes per step) and Square on the examples declared
    robust. The caller's random-number state is left untouched (the audit runs under a forked RNG from
    ``seed``).
    """
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got [{int(y.min())}, {int(y.max())}]")
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(f"inputs span [{x.min().item():.4g}, {x.max().item():.4g}], outside the domain {bounds}")
    limits = thresholds or AuditThresholds()
    step_size = default_step_size(eps, steps) if step_size is None else step_size
    pgd = dict(norm=norm, steps=steps, step_size=step_size, bounds=bounds, loss=loss)
    x, y = x.detach(), y.detach()
    n = x.shape[0]
    devices = [x.device] if x.device.type == "cuda" else []

    def reported(eps_: float, steps_: int, restarts_: int) -> Tensor:
        """Broken mask of the audited attack at a budget, from a fixed seed."""
        torch.manual_seed(seed)
        if attack_factory is None:
            size = step_size * eps_ / eps if eps > 0 else step_size
            run = dict(pgd, steps=steps_, step_size=size)
            return traced_pgd(model, x, y, eps=eps_, restarts=restarts_, **run).final_misclassified
        x_adv = attack_factory(eps=eps_, steps=steps_, restarts=restarts_)(x, y).detach()
        return (predict(model, x_adv) != y) & _inside(x_adv, x, norm, eps_, bounds)

    with torch.random.fork_rng(devices=devices):
        clean_correct = predict(model, x) == y
        torch.manual_seed(seed)
        trace = traced_pgd(model, x, y, eps=eps, restarts=restarts, **pgd)
        if attack_factory is None:
            reported_broken = trace.final_misclassified
        else:
            reported_broken = reported(eps, steps, restarts)
        reported_broken = reported_broken | ~clean_correct
        worst = reported_broken | trace.broken

        big = default_unbounded_eps(x, norm, eps, bounds) if unbounded_eps is None else unbounded_eps
        unbounded = dict(pgd, step_size=default_step_size(big, steps))
        free = traced_pgd(model, x, y, eps=big, restarts=1, random_start="none", **unbounded)

        comparisons: list[tuple[str, float, float]] = []
        if check_monotone:
            accuracy = 1.0 - int(reported_broken.sum()) / n
            for what, budget in _budget_variants(eps, steps, restarts):
                broken = reported(*budget) | ~clean_correct
                worst |= broken  # a success at a smaller budget also counts at eps
                comparisons.append((what, 1.0 - int(broken.sum()) / n, accuracy))

        robust = ~reported_broken
        found: dict[str, Tensor] = {}
        if bool(robust.any()):
            idx = robust.nonzero().squeeze(1)
            if square_queries > 0 and bounds == (0.0, 1.0) and x.dim() == 4:
                hit = _square_broken(model, x[idx], y[idx], norm, eps, square_queries, seed)
                found["square"] = _scatter(hit, idx, n)
            if eot_samples > 0:
                noise = _default_noise(x, norm, eps) if transfer_noise is None else transfer_noise
                torch.manual_seed(seed)
                margin_pgd = dict(pgd, loss="margin", eot=eot_samples, input_noise=noise)
                transfer = traced_pgd(model, x[idx], y[idx], eps=eps, restarts=1, **margin_pgd)
                found[f"eot{eot_samples}_margin_pgd"] = _scatter(transfer.broken, idx, n)
        for broken in found.values():
            worst |= broken

    indicators = [
        ind.silent_success(trace.broken, reported_broken, clean_correct, limits.silent_success),
        ind.incomplete_optimisation(
            trace.loss, clean_correct & ~trace.broken, limits.incomplete_window, limits.incomplete_rise
        ),
        ind.unavailable_gradients(
            trace.grad_unavailable,
            trace.misclassified,
            clean_correct,
            trace.graph_interrupted,
            limits.unavailable_gradients,
        ),
        ind.unconstrained_failure(free.broken, clean_correct, big, limits.unconstrained_success),
        ind.non_monotone(comparisons, limits.non_monotone),
        ind.transfer_success(found, robust, n, limits.transfer),
    ]
    return AuditReport(
        attack=name or default_name(norm, eps, steps, restarts),
        norm=norm,
        eps=eps,
        steps=steps,
        restarts=restarts,
        n=n,
        clean_accuracy=int(clean_correct.sum()) / n,
        robust_accuracy=1.0 - int(reported_broken.sum()) / n,
        worst_case_accuracy=1.0 - int(worst.sum()) / n,
        indicators={i.name: i for i in indicators},
    )


def _budget_variants(eps: float, steps: int, restarts: int) -> list[tuple[str, tuple[float, int, int]]]:
    """Smaller budgets (eps, steps, restarts) whose robust accuracy must not be lower than the full one."""
    variants = []
    if steps >= 2:
        variants.append(("2x steps", (eps, steps // 2, restarts)))
    if restarts > 1:
        variants.append((f"{restarts} restarts instead of 1", (eps, steps, 1)))
    if eps > 0:
        variants.append(("2x eps", (eps / 2, steps, restarts)))
    return variants


def _default_noise(x: Tensor, norm: Norm, eps: float) -> float:
    """Per-coordinate std of the transfer attack's input noise: eps/4 (Linf), eps/(4 sqrt(d)) (L2)."""
    return eps / 4 if norm == "Linf" else eps / (4 * math.sqrt(x[0].numel()))


def _scatter(mask: Tensor, idx: Tensor, n: int) -> Tensor:
    out = torch.zeros(n, dtype=torch.bool, device=mask.device)
    out[idx] = mask
    return out
