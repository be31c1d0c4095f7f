"""The attack-failure audit of an adversarial evaluation: which attacks are audited, on which examples.

Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of Adversarial
Examples" (NeurIPS 2022); docs/audit.md. Every rank audits the same first examples from the same seed,
so the reports do not depend on the world size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from robustlit.attacks.ball import Bounds
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.audit import INDICATOR_NAMES, AuditReport, audit_attack
from robustlit.audit.audit import AttackFn


def audit_targets(specs: Sequence[AttackSpec], names: Sequence[str] | None) -> list[AttackSpec]:
    """The specs audited: those named (metric names), else every attack budgeted in steps (gradient-based:
    PGD, APGD, FGSM, FAB, CW). AutoAttack and Square are audited only when named (AutoAttack costs a full
    run on the audited examples)."""
    if names is None:
        return [s for s in specs if s.registered.budget == "steps"]
    known = {s.metric_name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"audit_attacks: {unknown} are not configured attacks; choose among {sorted(known)}")
    return [known[n] for n in names]


def first_examples(dataset: Dataset, k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` examples of ``dataset`` as one batch on ``device``."""
    x, y = next(iter(DataLoader(dataset, batch_sampler=[list(range(k))])))[:2]  # type: ignore[arg-type]
    return x.to(device), y.to(device)


def audit_spec(
    spec: AttackSpec,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    bounds: Bounds,
    batch_size: int,
    square_queries: int,
    seed: int,
) -> AuditReport:
    """:func:`robustlit.audit.audit_attack` of the attack ``spec`` builds, at its own norm, eps, budget and loss.

    Smaller budgets (steps/2, 1 restart, eps/2) are the same spec with those fields replaced; an attack not
    budgeted in steps (AutoAttack, Square) is run once (no monotonicity check).
    """
    by_steps = spec.registered.budget == "steps"

    def factory(*, eps: float, steps: int, restarts: int) -> AttackFn:
        budget = {"eps": eps, "steps": steps, "restarts": restarts} if by_steps else {"eps": eps}
        return build_attack(dataclasses.replace(spec, **budget), model, num_classes, bounds, batch_size)

    loss = spec.effective_loss if spec.effective_loss in ("ce", "margin", "dlr") else "ce"
    return audit_attack(
        model,
        x,
        y,
        norm=spec.norm,
        eps=spec.eps,
        steps=spec.effective_steps,
        step_size=spec.effective_step_size if by_steps else None,
        bounds=bounds,
        restarts=spec.restarts,
        num_classes=num_classes,
        loss=loss,  # type: ignore[arg-type]
        name=spec.metric_name,
        attack_factory=factory,
        square_queries=square_queries,
        check_monotone=by_steps,
        seed=seed,
    )


#: the per-indicator raw values stay in the JSON; the loggers get the flags
_VALUES = tuple(f"/{name}" for name in INDICATOR_NAMES)


def audit_metrics(reports: dict[str, AuditReport], stage: str) -> dict[str, float]:
    """A few numbers per audited attack for the loggers: ``<stage>/audit/<attack>/reliable`` (0/1),
    ``worst_case_accuracy`` and one ``<indicator>_flag`` per indicator."""
    out: dict[str, float] = {}
    for report in reports.values():
        out.update({k: v for k, v in report.metrics(f"{stage}/audit").items() if not k.endswith(_VALUES)})
    return out
