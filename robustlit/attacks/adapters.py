"""Built-in evaluation attacks over torchattacks and pyautoattack, registered in the attack registry.

All adapters share one call convention, ``attack(x, y) -> x_adv``, on [0, 1] inputs, and run under
:func:`~robustlit.attacks.eval_mode.attack_mode` (applied by
:func:`~robustlit.attacks.registry.build_attack`). ``autoattack`` is the standard AutoAttack suite
(APGD-CE, APGD-T, FAB-T, Square; Croce and Hein 2020) from pyautoattack; torchattacks' own
``AutoAttack`` class uses non-standard step counts and is deliberately not exposed.

Known limits of what the libraries return (docs/evaluation.md):

- torchattacks ``PGD``, ``PGDL2``, ``EOTPGD`` return their *last* iterate: a success at an earlier
  step is lost. ``fgsm``, ``pgd`` and ``cw`` do not restart natively; with ``restarts > 1`` the
  restarts run here and per example any successful restart is kept. ``native_pgd`` keeps every
  success of every iterate and is the honest PGD number.
- ``apgd`` / ``apgd_t`` keep the best (misclassified) point over iterates and their own restarts;
  ``square`` stops per example at its first success; ``fab`` and ``cw`` search minimal
  perturbations (CW's outputs outside eps count as failures).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustlit.attacks.registry import AttackFn, register_attack
from robustlit.attacks.spec import AttackSpec


def keep_any_success(model: nn.Module, run_once: AttackFn, restarts: int) -> AttackFn:
    """Run a non-restarting attack ``restarts`` times; per example keep the first output that is misclassified."""

    def run(x: Tensor, y: Tensor) -> Tensor:
        out = run_once(x, y).detach()
        if restarts <= 1:
            return out
        with torch.no_grad():
            found = model(out).argmax(dim=1) != y
        for _ in range(restarts - 1):
            if bool(found.all()):
                break
            candidate = run_once(x, y).detach()
            with torch.no_grad():
                hit = (model(candidate).argmax(dim=1) != y) & ~found
            out = torch.where(hit.view(-1, *([1] * (x.dim() - 1))), candidate, out)
            found |= hit
        return out

    return run


def _callable(attack: Callable[[Tensor, Tensor], Tensor]) -> AttackFn:
    return lambda x, y: attack(x, y)


@register_attack("fgsm", losses=("ce",), default_loss="ce", norms=("Linf",), takes_step_size=False)
def build_fgsm(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """Goodfellow et al. (2015): one signed step of size eps (deterministic; restarts repeat it)."""
    import torchattacks

    return keep_any_success(model, _callable(torchattacks.FGSM(model, eps=spec.eps)), spec.restarts)


def _check_pgd(spec: AttackSpec) -> None:
    if spec.eot_samples > 1 and spec.norm != "Linf":
        raise ValueError("AttackSpec: pgd with eot_samples > 1 (torchattacks EOTPGD) is Linf only; use native_pgd")


@register_attack("pgd", losses=("ce",), default_loss="ce", eot=True, check=_check_pgd)
def build_pgd(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """Madry et al. (2018) via torchattacks PGD / PGDL2 / EOTPGD: cross-entropy, last iterate per restart."""
    import torchattacks

    eps, steps, alpha = spec.eps, spec.steps, spec.effective_step_size
    if spec.eot_samples > 1:
        attack = torchattacks.EOTPGD(
            model, eps=eps, alpha=alpha, steps=steps, eot_iter=spec.eot_samples, random_start=spec.random_start
        )
    elif spec.norm == "Linf":
        attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=spec.random_start)
    else:
        attack = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=spec.random_start)
    # torchattacks PGD returns its last iterate; restarts run here and keep any success per example
    return keep_any_success(model, _callable(attack), spec.restarts)


@register_attack("apgd", losses=("ce", "dlr"), default_loss="ce", eot=True, takes_step_size=False)
def build_apgd(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """APGD-CE / APGD-DLR (Croce and Hein 2020, sec. 3): keeps the best point over iterates and restarts."""
    import torchattacks

    return _callable(
        torchattacks.APGD(
            model,
            norm=spec.norm,
            eps=spec.eps,
            steps=spec.steps,
            n_restarts=spec.restarts,
            loss=spec.effective_loss,
            eot_iter=spec.eot_samples,
        )
    )


@register_attack("apgd_t", eot=True, takes_step_size=False)
def build_apgd_t(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """APGD-T (Croce and Hein 2020, sec. 4): targeted DLR loss over the top other classes."""
    import torchattacks

    if num_classes < 3:
        raise ValueError("apgd_t optimises the targeted DLR loss, which needs >= 3 classes; use native_pgd (margin)")
    return _callable(
        torchattacks.APGDT(
            model,
            norm=spec.norm,
            eps=spec.eps,
            steps=spec.steps,
            n_restarts=spec.restarts,
            n_classes=num_classes,
            eot_iter=spec.eot_samples,
        )
    )


@register_attack("square", budget="queries", takes_step_size=False)
def build_square(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """Square Attack (Andriushchenko et al. 2020), score-based with a margin loss; budget ``queries``."""
    import torchattacks

    return _callable(
        torchattacks.Square(model, norm=spec.norm, eps=spec.eps, n_queries=spec.queries, n_restarts=spec.restarts)
    )


@register_attack("fab", takes_step_size=False)
def build_fab(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """FAB (Croce and Hein 2020b): minimal-perturbation attack, restarts native."""
    import torchattacks

    return _callable(
        torchattacks.FAB(
            model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=spec.restarts, n_classes=num_classes
        )
    )


@register_attack("cw", norms=("L2",), minimal_norm=True, takes_step_size=False)
def build_cw(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """Carlini and Wagner (2017) L2, c = 1: minimal-norm, counted only inside eps."""
    import torchattacks

    attack = torchattacks.CW(model, c=1.0, kappa=0.0, steps=spec.steps, lr=0.01)
    return keep_any_success(model, _callable(attack), spec.restarts)


@register_attack("autoattack", budget="none", takes_step_size=False)
def build_autoattack(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: object, batch_size: int) -> AttackFn:
    """Standard AutoAttack (Croce and Hein 2020) via pyautoattack; fixed budgets, ``steps`` unused."""
    from pyautoattack import AutoAttack

    device = next(model.parameters()).device
    adversary = AutoAttack(model, norm=spec.norm, eps=spec.eps, version="standard", device=device, seed=0)

    def run(x: Tensor, y: Tensor) -> Tensor:
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        return x_adv

    return run
