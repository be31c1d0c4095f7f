"""The attack-failure indicators, each a pure function returning an :class:`Indicator` (docs/audit.md).

After Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of
Adversarial Examples" (NeurIPS 2022): silent success, incomplete optimisation,
unavailable gradients and unconstrained-attack failure; plus two checks from Carlini et al., "On
Evaluating Adversarial Robustness" (2019): robust accuracy must not rise with a
larger budget, and a gradient-free or transfer attack must not beat the white-box attack.

Every fraction is over the audited examples that are classified correctly without attack; an
example misclassified without attack counts as broken everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

__all__ = [
    "AuditThresholds",
    "Indicator",
    "incomplete_optimisation",
    "non_monotone",
    "transfer_success",
    "silent_success",
    "unavailable_gradients",
    "unconstrained_failure",
]


@dataclass(frozen=True)
class AuditThresholds:
    """When each indicator fires (all fractions in [0, 1]; docs/audit.md explains each choice).

    Args:
        silent_success: fires when more than this fraction of examples had a discarded success.
        incomplete_window: the last fraction of the iterations inspected for a still-rising loss.
        incomplete_rise: fires when that window holds more than this fraction of the total rise of the
            mean best-so-far loss (Pintor et al. use 0.05 on the loss rescaled to [0, 1]).
        unavailable_gradients: fires when more than this fraction of examples has a zero or
            non-finite gradient at half or more of its unbroken iterates.
        unconstrained_success: the unbounded attack must break at least this fraction.
        non_monotone: fires when a larger budget raises robust accuracy by more than this.
        transfer: fires when the black-box / transfer attacks break more than this fraction of
            examples that the audited attack declared robust (as a fraction of all examples).
    """

    silent_success: float = 0.0
    incomplete_window: float = 0.1
    incomplete_rise: float = 0.05
    unavailable_gradients: float = 0.01
    unconstrained_success: float = 0.99
    non_monotone: float = 0.01
    transfer: float = 0.01


@dataclass(frozen=True)
class Indicator:
    """One indicator for one attack: does it fire, the number behind it, and what to do.

    ``message`` says what was measured (and, when flagged, what to do); ``fix`` is the remedy alone.
    ``evaluated`` is False when the check could not run (e.g. no example left to inspect); such an
    indicator never fires.
    """

    name: str
    flagged: bool
    value: float
    threshold: float
    message: str
    fix: str = ""
    evaluated: bool = True

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["value"] = float(self.value) if math.isfinite(self.value) else str(self.value)
        return out


FIXES = {
    "silent_success": "keep a misclassifying iterate of any restart per example (best-iterate PGD, APGD)",
    "incomplete_optimisation": "more steps or an adaptive step size (APGD) until the loss plateaus",
    "unavailable_gradients": "a non-saturating loss (margin/DLR), BPDA, or a gradient-free attack (Square)",
    "unconstrained_failure": "another loss (margin/DLR), EOT, BPDA, or a black-box attack (Square)",
    "non_monotone": "report the per-example worst case over all runs; EOT for a randomised model",
    "transfer_success": "report the worst case over all attacks (AutoAttack); EOT, margin/DLR loss, Square",
}


def _indicator(
    name: str, flagged: bool, value: float, threshold: float, message: str, evaluated: bool = True
) -> Indicator:
    return Indicator(name, flagged, value, threshold, message, FIXES[name], evaluated)


def _fraction(count: Tensor | int, total: int) -> float:
    return float(count) / total if total > 0 else 0.0


def silent_success(found: Tensor, reported_broken: Tensor, clean_correct: Tensor, threshold: float = 0.0) -> Indicator:
    """Some iterate was misclassified (``found``) but the point the attack reported is not.

    Pintor et al. (2022): the attack found an adversarial example and returned another.
    """
    n = int(clean_correct.sum())
    silent = found & ~reported_broken & clean_correct
    value = _fraction(silent.sum(), n)
    flagged = value > threshold
    message = (
        f"{int(silent.sum())} of {n} examples were misclassified at some iterate but the reported point is "
        "classified correctly: keep, per example, a misclassifying iterate of any restart (best-iterate PGD, "
        "APGD) instead of the last iterate or the highest-loss restart."
        if flagged
        else f"no discarded success ({int(silent.sum())} of {n})."
    )
    return _indicator("silent_success", flagged, value, threshold, message, evaluated=n > 0)


def incomplete_optimisation(loss: Tensor, unbroken: Tensor, window: float = 0.1, threshold: float = 0.05) -> Indicator:
    """The attack loss is still rising at the end on the examples it failed to break.

    ``loss`` is (R, T+1, N). Per example the best-so-far loss (over iterates, then over restarts) is
    averaged over the unbroken examples into a curve m(t); the value is the share of its total rise
    m(T) - m(0) made within the last ``window`` of the iterations, the mean-curve form of Pintor et
    al.'s (2022) check on the rescaled loss.
    """
    steps = loss.shape[1] - 1
    n = int(unbroken.sum())
    if n == 0 or steps < 2:
        why = "no unbroken example to inspect." if n == 0 else "fewer than 2 steps."
        return _indicator("incomplete_optimisation", False, 0.0, threshold, why, evaluated=False)
    clean = torch.nan_to_num(loss[:, :, unbroken].double(), nan=0.0).clamp(-1e30, 1e30)
    curve = clean.cummax(dim=1).values.amax(dim=0).mean(dim=1)  # (T+1,)
    k = max(1, math.ceil(window * steps))
    total = float(curve[-1] - curve[0])
    late = float(curve[-1] - curve[-1 - k])
    value = late / total if total > 1e-6 * (1.0 + abs(float(curve[-1]))) else 0.0
    flagged = value > threshold
    message = (
        f"the mean best loss of the {n} unbroken examples rose {value:.0%} of its total gain in the last "
        f"{k} of {steps} steps: run more steps (or an adaptive step size such as APGD) until it plateaus."
        if flagged
        else f"the loss has plateaued ({value:.1%} of its gain in the last {k} steps)."
    )
    return _indicator("incomplete_optimisation", flagged, value, threshold, message)


def unavailable_gradients(
    grad_unavailable: Tensor,
    misclassified: Tensor,
    clean_correct: Tensor,
    graph_interrupted: bool = False,
    threshold: float = 0.01,
) -> Indicator:
    """Zero or non-finite input gradients (Pintor et al. 2022; Athalye et al. 2018).

    ``grad_unavailable`` is (R, T, N), ``misclassified`` (R, T+1, N). An example counts when its gradient
    is zero or non-finite at half or more of the iterates at which it was still classified correctly.
    """
    n = int(clean_correct.sum())
    fix = (
        "use a loss that does not saturate (margin or DLR), BPDA for non-differentiable layers, "
        "or a gradient-free attack (Square)."
    )
    if graph_interrupted:
        message = f"the attack objective does not depend differentiably on the input: {fix}"
        return _indicator("unavailable_gradients", True, 1.0, threshold, message, evaluated=n > 0)
    unbroken_iterates = ~misclassified[:, :-1]
    counted = unbroken_iterates.flatten(0, 1).sum(dim=0)
    bad = (grad_unavailable & unbroken_iterates).flatten(0, 1).sum(dim=0)
    example_bad = (counted > 0) & (2 * bad >= counted) & clean_correct
    value = _fraction(example_bad.sum(), n)
    flagged = value > threshold
    message = (
        f"{int(example_bad.sum())} of {n} examples have zero or non-finite input gradients: {fix}"
        if flagged
        else f"gradients available ({int(example_bad.sum())} of {n} examples without)."
    )
    return _indicator("unavailable_gradients", flagged, value, threshold, message, evaluated=n > 0)


def unconstrained_failure(
    found: Tensor, clean_correct: Tensor, unbounded_eps: float, threshold: float = 0.99
) -> Indicator:
    """With an unbounded eps every correctly classified example must become misclassified.

    Pintor et al. (2022); the value is the success rate of the unbounded attack, which
    fires below ``threshold``.
    """
    n = int(clean_correct.sum())
    if n == 0:
        return _indicator("unconstrained_failure", False, 1.0, threshold, "no correct example.", evaluated=False)
    value = _fraction((found & clean_correct).sum(), n)
    flagged = value < threshold
    message = (
        f"with eps = {unbounded_eps:.4g} the attack broke only {value:.1%} of {n} examples (a sound attack "
        "breaks ~all): the gradients mislead it; try another loss (margin/DLR), EOT, BPDA or a black-box attack."
        if flagged
        else f"the unbounded attack (eps = {unbounded_eps:.4g}) breaks {value:.1%}."
    )
    return _indicator("unconstrained_failure", flagged, value, threshold, message)


def non_monotone(comparisons: Sequence[tuple[str, float, float]], threshold: float = 0.01) -> Indicator:
    """Robust accuracy must not rise with a larger budget (Carlini et al. 2019).

    ``comparisons`` holds ``(what, accuracy with the smaller budget, accuracy with the larger)``; the
    value is the largest rise.
    """
    if not comparisons:
        return _indicator("non_monotone", False, 0.0, threshold, "no budget variant run.", evaluated=False)
    rises = [(larger - smaller, what, smaller, larger) for what, smaller, larger in comparisons]
    value, what, smaller, larger = max(rises)
    flagged = value > threshold
    message = (
        f"robust accuracy rose from {smaller:.1%} to {larger:.1%} with {what}: report the per-example worst "
        "case over all runs (keep every success across iterates and restarts); a randomised model needs EOT."
        if flagged
        else "robust accuracy does not rise with " + ", ".join(c[0] for c in comparisons) + "."
    )
    return _indicator("non_monotone", flagged, value, threshold, message)


def transfer_success(
    extra_broken: dict[str, Tensor], declared_robust: Tensor, total: int, threshold: float = 0.01
) -> Indicator:
    """Black-box or transfer attacks break examples the audited attack declared robust.

    ``extra_broken`` maps an attack name to its (N,) broken mask; the value is the number of declared-
    robust examples any of them breaks, over all ``total`` examples: how much robust accuracy is
    overstated (Athalye et al. 2018; Carlini et al. 2019).
    """
    if not extra_broken:
        return _indicator("transfer_success", False, 0.0, threshold, "no black-box attack ran.", evaluated=False)
    union = torch.zeros_like(declared_robust)
    parts = []
    for name, broken in extra_broken.items():
        hit = broken & declared_robust
        union |= hit
        parts.append(f"{name} {int(hit.sum())}")
    value = _fraction(union.sum(), total)
    flagged = value > threshold
    message = (
        f"{int(union.sum())} of {int(declared_robust.sum())} examples declared robust were broken "
        f"({', '.join(parts)}): report the worst case over all attacks (e.g. AutoAttack); use EOT for a "
        "randomised model, a margin/DLR loss for saturated logits, a black-box attack for masked gradients."
        if flagged
        else f"no attack beat the white-box one by more than {threshold:.0%} ({', '.join(parts)})."
    )
    return _indicator("transfer_success", flagged, value, threshold, message, evaluated=bool(declared_robust.any()))
