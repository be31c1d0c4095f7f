"""Each indicator on a toy built to trip it (and to stay quiet when the attack is fixed)."""

from __future__ import annotations

import pytest
import torch
from audit_toys import restart_toy, saturated_tsipras, silent_success_toy
from torch import nn

from robustlit.audit import attack_objective, audit_attack, traced_pgd
from robustlit.audit import indicators as ind


def test_silent_success_flagged_for_last_iterate_pgd_not_for_best_iterate() -> None:
    model = silent_success_toy()
    x, y = torch.zeros(40, 1), torch.zeros(40, dtype=torch.long)
    budget = dict(norm="Linf", eps=1.0, steps=20, step_size=0.1, num_classes=3)
    classic = audit_attack(model, x, y, **budget)
    silent = classic.indicators["silent_success"]
    assert silent.flagged and silent.value > 0.5, silent.message
    assert classic.robust_accuracy == 1.0  # the last iterate always lands back in the correct region
    assert classic.worst_case_accuracy < 0.5

    def best_iterate(*, eps: float, steps: int, restarts: int):
        def attack(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            trace = traced_pgd(model, xb, yb, norm="Linf", eps=eps, steps=steps, step_size=0.1, restarts=restarts)
            return trace.x_best

        return attack

    fixed = audit_attack(model, x, y, **budget, attack_factory=best_iterate)
    assert not fixed.indicators["silent_success"].flagged, fixed.indicators["silent_success"].message
    assert fixed.robust_accuracy < classic.robust_accuracy - 0.5


def test_restarts_raising_robust_accuracy_is_flagged_non_monotone() -> None:
    """The issue's toy: classic PGD keeps the highest-loss restart, which is the correctly classified one."""
    model = restart_toy()
    x, y = torch.full((200, 1), 0.6), torch.zeros(200, dtype=torch.long)
    budget = dict(norm="Linf", eps=0.6, steps=10, num_classes=3)
    one = audit_attack(model, x, y, restarts=1, **budget)
    four = audit_attack(model, x, y, restarts=4, **budget)
    assert four.robust_accuracy > one.robust_accuracy + 0.25, (one.robust_accuracy, four.robust_accuracy)
    monotone = four.indicators["non_monotone"]
    assert monotone.flagged and "restarts" in monotone.message and monotone.value > 0.25
    assert not one.indicators["non_monotone"].flagged


def test_saturated_tsipras_linear_classifier_is_flagged_on_unbounded_features() -> None:
    """Median logit margin ~190: the float32 cross-entropy gradient is exactly zero (population robust acc 0)."""
    model, x, y, eps = saturated_tsipras()
    report = audit_attack(model, x, y, norm="Linf", eps=eps, steps=20, bounds=None, num_classes=2)
    assert report.robust_accuracy > 0.9  # what a cross-entropy PGD would report
    assert report.indicators["unavailable_gradients"].flagged
    assert report.indicators["unconstrained_failure"].flagged
    assert report.indicators["transfer_success"].flagged  # the margin-loss transfer attack breaks it
    assert report.worst_case_accuracy <= 0.05
    assert "square" not in report.indicators["transfer_success"].message  # Square needs [0, 1] images


class Detached(nn.Module):
    """Interrupted graph: the input is detached before a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.detach())


def test_interrupted_graph_counts_as_unavailable_gradients() -> None:
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    trace = traced_pgd(Detached(), x, y, norm="Linf", eps=0.1, steps=3)
    assert trace.graph_interrupted
    report = audit_attack(Detached(), x, y, norm="Linf", eps=0.1, steps=3, num_classes=3)
    assert report.indicators["unavailable_gradients"].flagged


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_trace_stays_in_threat_model_and_records_every_iterate(norm) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    x, y = torch.rand(6, 1, 4, 4), torch.randint(0, 5, (6,))
    eps = 0.1 if norm == "Linf" else 0.5
    trace = traced_pgd(model, x, y, norm=norm, eps=eps, steps=7, restarts=3)
    assert trace.loss.shape == (3, 8, 6) and trace.misclassified.shape == (3, 8, 6)
    assert trace.grad_norm.shape == (3, 7, 6) and bool(trace.grad_finite.all())
    for point in (trace.x_final, trace.x_best):
        delta = (point - x).flatten(1)
        size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
        assert bool((size <= eps + 1e-5).all()) and point.min() >= 0 and point.max() <= 1
    with torch.no_grad():
        assert torch.equal(model(trace.x_best).argmax(1) != y, trace.broken)


def test_incomplete_optimisation_reads_the_end_of_the_loss_curve() -> None:
    steps = torch.arange(51, dtype=torch.float32)
    unbroken = torch.ones(4, dtype=torch.bool)
    rising = steps[None, :, None].expand(1, 51, 4)  # linear: 10% of the gain in the last 10% of steps
    flagged = ind.incomplete_optimisation(rising, unbroken)
    assert flagged.flagged and flagged.value == pytest.approx(0.1)
    plateau = (1 - torch.exp(-steps / 5))[None, :, None].expand(1, 51, 4)
    assert not ind.incomplete_optimisation(plateau, unbroken).flagged
    assert not ind.incomplete_optimisation(rising, torch.zeros(4, dtype=torch.bool)).evaluated


def test_transfer_and_non_monotone_values() -> None:
    robust = torch.tensor([True, True, False, False])
    hit = ind.transfer_success({"square": torch.tensor([True, False, True, False])}, robust, total=4)
    assert hit.flagged and hit.value == 0.25  # one declared-robust example of four broken
    assert not ind.transfer_success({}, robust, total=4).evaluated
    rise = ind.non_monotone([("2x steps", 0.5, 0.52), ("2x eps", 0.3, 0.2)], threshold=0.01)
    assert rise.flagged and rise.value == pytest.approx(0.02) and "2x steps" in rise.message
    assert not ind.non_monotone([("2x eps", 0.3, 0.2)]).flagged


def test_objectives() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    assert torch.allclose(attack_objective("margin", logits, y), torch.tensor([-2.0, 2.0]))
    assert torch.allclose(attack_objective("dlr", logits, y), torch.tensor([-2.0 / 3.0, 2.0 / 2.0]))
    ce = attack_objective("ce", logits, y)
    assert torch.allclose(ce, nn.functional.cross_entropy(logits, y, reduction="none"))
    with pytest.raises(ValueError, match="3 classes"):
        attack_objective("dlr", logits[:, :2], y)
