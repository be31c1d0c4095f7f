"""Attack losses: definitions, refusals with the fix, metric names, and each loss breaks an undefended model."""

from __future__ import annotations

import pytest
import torch
from undefended import accuracy, held_out, undefended_small_cnn

from robustlit.attacks import AttackSpec, build_attack, dlr_loss, margin_loss
from robustlit.attacks.losses import cross_entropy_loss


def test_losses_match_their_definitions() -> None:
    z = torch.tensor([[3.0, 1.0, 2.0, -1.0], [0.0, 5.0, 1.0, 4.0]])
    y = torch.tensor([0, 3])
    assert torch.allclose(margin_loss(z, y), torch.tensor([2.0 - 3.0, 5.0 - 4.0]))
    # DLR (Croce and Hein 2020, eq. 4): -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)
    assert torch.allclose(dlr_loss(z, y), torch.tensor([-(3.0 - 2.0) / (3.0 - 1.0), -(4.0 - 5.0) / (5.0 - 1.0)]))
    assert torch.allclose(dlr_loss(10 * z + 7, y), dlr_loss(z, y), atol=1e-6)  # shift and scale invariant
    assert torch.allclose(cross_entropy_loss(z, y), torch.nn.functional.cross_entropy(z, y, reduction="none"))


def test_dlr_on_two_classes_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="margin"):
        dlr_loss(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="use loss: margin|Use loss: margin"):
        build_attack(AttackSpec(name="native_pgd", eps=0.1, loss="dlr"), torch.nn.Linear(4, 2), 2, bounds=None)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "pgd", "loss": "margin"}, "native_pgd"),
        ({"name": "fgsm", "loss": "dlr"}, "ce"),
        ({"name": "square", "loss": "ce"}, "own objective"),
        ({"name": "autoattack", "eot_samples": 4}, "eot_samples"),
        ({"name": "pgd", "norm": "L2", "eot_samples": 4}, "Linf only"),
    ],
)
def test_attacks_refuse_a_loss_or_eot_they_cannot_use(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AttackSpec(eps=0.1, **kwargs)


def test_metric_names_show_loss_and_eot() -> None:
    assert AttackSpec(name="native_pgd", eps=0.2, steps=20).metric_name == "native_pgd20_margin_linf_0.2"
    assert AttackSpec(name="native_pgd", eps=0.2, steps=20, loss="ce").metric_name == "native_pgd20_linf_0.2"
    assert AttackSpec(name="apgd", eps=0.2, steps=20, loss="dlr").metric_name == "apgd20_dlr_linf_0.2"
    assert AttackSpec(name="pgd", eps=0.2, steps=20).metric_name == "pgd20_linf_0.2"
    spec = AttackSpec(name="native_pgd", eps=0.2, steps=20, restarts=2, eot_samples=8)
    assert spec.metric_name == "native_pgd20x2_margin_eot8_linf_0.2"


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(name="native_pgd", eps=0.2, steps=20, loss="ce"),
        AttackSpec(name="native_pgd", eps=0.2, steps=20, loss="margin"),
        AttackSpec(name="native_pgd", eps=0.2, steps=20, loss="dlr"),
        AttackSpec(name="native_pgd", eps=0.2, steps=10, eot_samples=2),
        AttackSpec(name="apgd", eps=0.2, steps=20, loss="dlr"),
        AttackSpec(name="pgd", eps=0.2, steps=10, eot_samples=2),
    ],
    ids=lambda s: s.metric_name,
)
def test_each_loss_breaks_an_undefended_model(spec: AttackSpec) -> None:
    model = undefended_small_cnn()
    x, y = held_out(100)
    torch.manual_seed(0)
    x_adv = build_attack(spec, model, num_classes=10)(x, y)
    assert accuracy(model, x, y) >= 0.9
    assert accuracy(model, x_adv, y) <= 0.05 + 1e-6  # 5 of 100 in float32 is 0.0500000007
