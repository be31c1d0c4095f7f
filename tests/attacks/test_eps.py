"""Radii as users write them: ``8/255`` is accepted everywhere and kept exact; each norm has its own range."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

from robustlit.attacks import AttackSpec, ThreatModel
from robustlit.attacks.eps import Eps, check_eps
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.models import SmallCNN


def test_fractions_are_exact_and_keep_their_spelling() -> None:
    eps = Eps("8/255")
    assert float(eps) == 8 / 255 and str(eps) == "8/255" and eps.label == "8/255"
    assert Eps(" 4 / 255 ").text == "4/255"
    assert str(Eps(0.2)) == "0.2" and Eps(0.2).label == "0.2" and Eps(8 / 255).label == "0.03137"
    assert pickle.loads(pickle.dumps(eps)).text == "8/255"
    assert json.loads(json.dumps({"eps": eps}))["eps"] == 8 / 255  # a number in JSON, as before


@pytest.mark.parametrize("bad", ["8/0", "eight", "-0.1", "nan", "inf", "1/-255"])
def test_malformed_or_negative_radii_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="eps"):
        Eps(bad)


def test_attack_names_keep_a_fraction() -> None:
    spec = AttackSpec(name="pgd", norm="Linf", eps="8/255", steps=10)
    assert spec.metric_name == "pgd10_linf_8/255"
    assert AttackSpec(name="pgd", eps=0.2, steps=50).metric_name == "pgd50_linf_0.2"  # decimals unchanged


def test_each_norm_has_its_own_range() -> None:
    with pytest.raises(ValueError, match=r"outside the Linf range \[0, 1\].*8/255, not 8"):
        AttackSpec(name="pgd", norm="Linf", eps=8)
    AttackSpec(name="pgd", norm="L2", eps=3.0)  # L2 radii above 1 are standard (ImageNet: 3.0)
    check_eps(Eps(2.0), "L2", (0.0, 1.0), (1, 8, 8))  # sqrt(64) = 8 on the 8x8 digits
    with pytest.raises(ValueError, match=r"outside the L2 range \[0, 8\].*d = 64"):
        check_eps(Eps(9.0), "L2", (0.0, 1.0), (1, 8, 8))
    assert ThreatModel(norm="L2", eps="3/2").eps == 1.5


def test_l2_radius_is_checked_once_the_data_shape_is_known() -> None:
    data = torch.utils.data.TensorDataset(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    model = SmallCNN(num_classes=10, in_channels=1, width=4)
    ok = AdversarialEvaluation([AttackSpec(name="native_pgd", norm="L2", eps=2.0, steps=2)], num_examples=4)
    ok.evaluate(model, data, 10, (0.0, 1.0), torch.device("cpu"))
    too_big = AdversarialEvaluation([AttackSpec(name="native_pgd", norm="L2", eps=9.0, steps=2)], num_examples=4)
    with pytest.raises(ValueError, match=r"outside the L2 range \[0, 8\]"):
        too_big.evaluate(model, data, 10, (0.0, 1.0), torch.device("cpu"))
    threat = ThreatModel(norm="L2", eps=9.0, steps=1, step_size=1.0)
    with pytest.raises(ValueError, match="L2 range"):
        threat.maximize(model, torch.rand(2, 1, 8, 8), lambda logits: logits.sum(dim=1))
    assert math.isclose(threat.eps, 9.0)
