"""Build evaluation attacks from an :class:`AttackSpec`: adapters over torchattacks and pyautoattack.

All adapters share one call convention, ``attack(x, y) -> x_adv``, on [0, 1] inputs, and run under
:func:`attack_mode`. ``autoattack`` is the standard AutoAttack suite (APGD-CE, APGD-T, FAB-T,
Square) from pyautoattack; torchattacks' own ``AutoAttack`` class uses non-standard step counts and
is deliberately not exposed (docs/evaluation.md, AutoAttack).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.spec import MINIMAL_NORM_ATTACKS, AttackSpec

AttackFn = Callable[[Tensor, Tensor], Tensor]


def _torchattacks(spec: AttackSpec, model: nn.Module, num_classes: int):  # noqa: ANN202 - torchattacks type
    import torchattacks

    eps, steps, alpha = spec.eps, spec.steps, spec.effective_step_size
    if spec.name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if spec.name == "pgd" and spec.norm == "Linf":
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=spec.random_start)
    if spec.name == "pgd":
        return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=spec.random_start)
    if spec.name == "apgd":
        return torchattacks.APGD(model, norm=spec.norm, eps=eps, steps=steps, n_restarts=spec.restarts, loss="ce")
    if spec.name == "apgd_t":
        return torchattacks.APGDT(
            model, norm=spec.norm, eps=eps, steps=steps, n_restarts=spec.restarts, n_classes=num_classes
        )
    if spec.name == "square":
        return torchattacks.Square(model, norm=spec.norm, eps=eps, n_queries=steps, n_restarts=spec.restarts)
    if spec.name == "fab":
        return torchattacks.FAB(
            model, norm=spec.norm, eps=eps, steps=steps, n_restarts=spec.restarts, n_classes=num_classes
        )
    if spec.name == "cw":
        return torchattacks.CW(model, c=1.0, kappa=0.0, steps=steps, lr=0.01)
    raise ValueError(f"no torchattacks adapter for {spec.name!r}")


def _autoattack(spec: AttackSpec, model: nn.Module, device: torch.device, batch_size: int) -> AttackFn:
    from pyautoattack import AutoAttack

    adversary = AutoAttack(model, norm=spec.norm, eps=spec.eps, version="standard", device=device, seed=0)

    def run(x: Tensor, y: Tensor) -> Tensor:
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        return x_adv

    return run


def _native_pgd(spec: AttackSpec, model: nn.Module, bounds: tuple[float, float] | None) -> AttackFn:
    def run(x: Tensor, y: Tensor) -> Tensor:
        return pgd_attack(
            model,
            x,
            lambda logits: nn.functional.cross_entropy(logits, y, reduction="none"),
            eps=spec.eps,
            step_size=spec.effective_step_size,
            steps=spec.effective_steps,
            norm=spec.norm,
            random_start_kind="uniform" if spec.random_start else "none",
            bounds=bounds,
            restarts=spec.restarts,
        )

    return run


def inside_threat_model(x_adv: Tensor, x: Tensor, spec: AttackSpec, tol: float = 1e-5) -> Tensor:
    """Per-example mask: is x_adv within B_eps(x) (and the box, checked by the caller)?"""
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if spec.norm == "Linf" else delta.norm(dim=1)
    return size <= spec.eps + tol


def build_attack(
    spec: AttackSpec,
    model: nn.Module,
    num_classes: int,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
) -> AttackFn:
    """Return ``attack(x, y) -> x_adv`` for ``spec`` against ``model`` (built on the model's device).

    The returned function enters :func:`attack_mode`, checks the inputs lie in ``bounds``, and
    verifies that every adversarial example respects the threat model: a bounded attack that steps
    outside is a bug and raises; a minimal-norm attack (CW) outside eps is replaced by the clean
    input, i.e. counted as a failed attack.
    """
    if bounds is None and spec.name != "native_pgd":
        raise ValueError(
            f"attack {spec.name!r} assumes inputs in [0, 1], but this data has an unbounded domain "
            "(feature vectors); use name: native_pgd."
        )
    device = next(model.parameters()).device
    if spec.name == "native_pgd":
        inner = _native_pgd(spec, model, bounds)
    elif spec.name == "autoattack":
        inner = _autoattack(spec, model, device, batch_size)
    else:
        inner = _torchattacks(spec, model, num_classes)

    def attack(x: Tensor, y: Tensor) -> Tensor:
        if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
            raise ValueError(
                f"{spec.name}: inputs span [{x.min().item():.4g}, {x.max().item():.4g}], outside {bounds}. "
                "robustlit attacks work in pixel space: feed un-normalised inputs and keep normalisation "
                "inside the model (robustlit.models.Normalize)."
            )
        with attack_mode(model):
            x_adv = inner(x, y).detach().to(x.device)
        inside = inside_threat_model(x_adv, x, spec)
        if bounds is not None:
            inside &= (x_adv >= bounds[0] - 1e-6).flatten(1).all(1) & (x_adv <= bounds[1] + 1e-6).flatten(1).all(1)
        if not bool(inside.all()):
            if spec.name not in MINIMAL_NORM_ATTACKS:
                raise RuntimeError(
                    f"{spec.name} returned {int((~inside).sum())} examples outside the threat model "
                    f"({spec.norm}, eps={spec.eps}); refusing to report a robust accuracy from them."
                )
            x_adv = torch.where(inside.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
        return x_adv

    return attack
