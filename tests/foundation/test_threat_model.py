"""One threat-model value: validation, and maximize() is the shared PGD with exactly these settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from robustlit.attacks.log_barrier import LogBarrierThreatModel, log_barrier_attack
from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.threat_model import ThreatModel
from robustlit.methods import PGDAT, TRADES, DROAdversarialTraining
from robustlit.models import SmallCNN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 2.0}, r"outside the Linf range \[0, 1\]"),
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"step_size": -1.0}, "step_size"),
        ({"steps": 0}, "steps"),
        ({"norm": "L1"}, "norm"),
        ({"random_start": "sphere"}, "random_start"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
    ],
)
def test_invalid_threat_models_are_refused_with_the_field_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ThreatModel(**kwargs)


def test_radius_limits_follow_the_domain() -> None:
    assert ThreatModel(norm="L2", eps=3.0).eps == 3.0  # an L2 radius may exceed the pixel range
    assert ThreatModel(eps=5.0, bounds=None).eps == 5.0  # unbounded feature vectors
    assert ThreatModel(eps=0.5, bounds=[0, 1]).bounds == (0.0, 1.0)  # lists from YAML become a tuple
    with pytest.raises(dataclasses.FrozenInstanceError):
        ThreatModel().eps = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_maximize_is_pgd_attack_with_the_same_settings(norm: str) -> None:
    torch.manual_seed(0)
    model = SmallCNN(10, 1, width=8, hidden=16)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    threat = ThreatModel(norm=norm, eps=0.2, step_size=0.05, steps=4, random_start="uniform")

    def loss_fn(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, reduction="none")

    torch.manual_seed(1)
    ours = threat.maximize(model, x, loss_fn)
    torch.manual_seed(1)
    reference = pgd_attack(model, x, loss_fn, eps=0.2, step_size=0.05, steps=4, norm=norm, random_start_kind="uniform")
    assert torch.equal(ours, reference)
    assert not torch.equal(ours, x)
    distance = (ours - x).flatten(1).abs().amax(1) if norm == "Linf" else (ours - x).flatten(1).norm(dim=1)
    assert (distance <= 0.2 + 1e-6).all()


def test_methods_build_one_threat_model_from_their_flat_arguments() -> None:
    backbone = SmallCNN(10, 1, width=8, hidden=16)
    pgd = PGDAT(backbone=backbone, eps=0.2, step_size=0.05, steps=3, norm="L2")
    assert pgd.threat_model == ThreatModel("L2", 0.2, 0.05, 3, "uniform", (0.0, 1.0))
    assert TRADES(backbone=backbone, eps=0.1).threat_model.random_start == "gaussian"
    dro = DROAdversarialTraining(backbone=backbone, eps=0.2, step_size=0.05, steps=3, inner_attack="log_barrier")
    assert dro.threat_model == LogBarrierThreatModel("Linf", 0.2, 0.05, 3, "uniform", (0.0, 1.0), barrier_weight=1e-3)


def test_log_barrier_threat_model_runs_the_barrier_attack() -> None:
    torch.manual_seed(0)
    model = SmallCNN(10, 1, width=8, hidden=16)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    threat = LogBarrierThreatModel(eps=0.1, step_size=0.02, steps=5, barrier_weight=1e-2)

    def loss_fn(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, reduction="none")

    torch.manual_seed(2)
    ours = threat.maximize(model, x, loss_fn)
    torch.manual_seed(2)
    reference = log_barrier_attack(model, x, loss_fn, 0.1, 0.02, 5, barrier_weight=1e-2)
    assert torch.equal(ours, reference)
    assert (ours - x).abs().max() < 0.1  # strictly inside the box
    with pytest.raises(ValueError, match="log_barrier"):
        LogBarrierThreatModel(norm="L2", eps=0.5)
