"""Gradient masking (Athalye, Carlini and Wagner 2018) is flagged; a normally trained model is not."""

from __future__ import annotations

import pytest
import torch
from audit_toys import NoisyInput, Quantised, ScaledLogits, SigmoidSquash

from robustlit.audit import audit_attack

BUDGET = dict(norm="Linf", eps=0.2, steps=50, num_classes=10, square_queries=300)


def test_undefended_model_is_broken_and_not_flagged(digits_model) -> None:
    model, x, y = digits_model
    report = audit_attack(model, x, y, **BUDGET)
    assert report.clean_accuracy > 0.9
    assert report.robust_accuracy <= 0.02, report.to_dict()  # the audit's attack breaks the undefended model
    assert report.reliable, [i.message for i in report.flagged]
    assert report.indicators["unconstrained_failure"].value == 1.0
    assert report.indicators["unavailable_gradients"].value == 0.0


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 0.5)])
def test_undefended_model_has_sound_gradients_where_examples_survive(digits_model, norm, eps) -> None:
    """At a radius where ~40% survive, the optimisation-level indicators stay quiet."""
    model, x, y = digits_model
    report = audit_attack(model, x, y, norm=norm, eps=eps, steps=50, num_classes=10, square_queries=0)
    assert 0.2 < report.robust_accuracy < 0.7, report.robust_accuracy
    for name in ("silent_success", "incomplete_optimisation", "unavailable_gradients", "unconstrained_failure"):
        indicator = report.indicators[name]
        assert indicator.evaluated and not indicator.flagged, indicator.message
    assert not report.indicators["non_monotone"].flagged


@pytest.mark.parametrize(
    ("wrapper", "expected"),
    [
        (Quantised, {"unavailable_gradients", "unconstrained_failure", "transfer_success"}),  # shattered
        (ScaledLogits, {"unavailable_gradients", "unconstrained_failure", "transfer_success"}),  # vanishing
        (SigmoidSquash, {"unavailable_gradients", "unconstrained_failure", "transfer_success"}),  # vanishing
        (NoisyInput, {"silent_success", "transfer_success"}),  # stochastic
    ],
    ids=["shattered-quantised", "vanishing-logits-1e4", "vanishing-sigmoid-squash", "stochastic-input-noise"],
)
def test_gradient_masking_is_flagged(digits_model, wrapper, expected) -> None:
    base, x, y = digits_model
    masked = wrapper(base)
    report = audit_attack(masked, x[:64], y[:64], **BUDGET)
    flagged = {i.name for i in report.flagged}
    assert not report.reliable
    assert expected <= flagged, {n: (i.flagged, round(i.value, 3)) for n, i in report.indicators.items()}
    # the audit itself finds what the masked gradients hide
    assert report.worst_case_accuracy < report.robust_accuracy
    assert all(indicator.fix for indicator in report.flagged)


def test_audit_leaves_model_mode_and_rng_untouched(digits_model) -> None:
    model, x, y = digits_model
    model.train()
    state = torch.random.get_rng_state()
    try:
        audit_attack(model, x[:16], y[:16], norm="Linf", eps=0.1, steps=5, num_classes=10, square_queries=50)
        assert model.training
        assert all(p.requires_grad for p in model.parameters())
        assert torch.equal(torch.random.get_rng_state(), state)
    finally:
        model.eval()
