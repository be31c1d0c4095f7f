"""The default native_pgd does not stall on a saturated cross-entropy (Tsipras et al. 2019 distribution)."""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlit.attacks import AttackSpec, build_attack
from robustlit.data.tsipras import linear_population_accuracy, sample_tsipras

D, P = 1000, 0.95
ETA = 6 / math.sqrt(D)
EPS = 2 * ETA


def _averaging_classifier() -> nn.Linear:
    """Class-1-minus-class-0 score = the sum of the d weak features (x_1 ignored): median margin ~ eta d = 190."""
    linear = nn.Linear(D + 1, 2)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[1, 1:] = 0.5
        linear.weight[0, 1:] = -0.5
    return linear


def _robust_accuracy(spec: AttackSpec) -> tuple[float, float, float]:
    torch.manual_seed(0)
    x, y = sample_tsipras(2000, D, P, ETA, torch.Generator().manual_seed(1))
    model = _averaging_classifier()
    x_adv = build_attack(spec, model, num_classes=2, bounds=None)(x, y)
    with torch.no_grad():
        logits = model(x)
        margin = (logits[:, 1] - logits[:, 0]) * (2 * y - 1)
        clean = logits.argmax(1) == y
        robust = (clean & (model(x_adv).argmax(1) == y)).float().mean().item()
    return clean.float().mean().item(), robust, margin.median().item()


def test_default_native_pgd_reports_the_exact_population_robust_accuracy() -> None:
    weight = _averaging_classifier().weight
    exact = linear_population_accuracy(weight[1] - weight[0], 0.0, P, ETA, eps=EPS)
    assert exact < 1e-6  # Phi(-eta sqrt(d)) = Phi(-6)
    spec = AttackSpec(name="native_pgd", eps=EPS, steps=20)
    assert spec.effective_loss == "margin" and spec.metric_name == "native_pgd20_margin_linf_0.3795"
    clean, robust, median_margin = _robust_accuracy(spec)
    assert clean > 0.99 and 150 < median_margin < 230, (clean, median_margin)
    assert abs(robust - exact) <= 0.05, (robust, exact)


def test_cross_entropy_gradient_underflows_on_the_same_model() -> None:
    """The reason for the margin default: float32 CE reports the saturated model as robust."""
    _, robust, _ = _robust_accuracy(AttackSpec(name="native_pgd", eps=EPS, steps=20, loss="ce"))
    assert robust > 0.9, robust


def test_one_margin_step_is_exact_for_a_linear_model() -> None:
    """What configs/tsipras/*.yaml run: one signed step of size eps on the margin loss."""
    spec = AttackSpec(name="native_pgd", eps=EPS, steps=1, step_size=EPS, random_start=False)
    _, robust, _ = _robust_accuracy(spec)
    assert robust == 0.0
