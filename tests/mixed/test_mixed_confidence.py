"""The confidence report (robustlit.mixed.confidence; docs/mixed_classifier.md) on a toy whose margins are known in
closed form: a two-class linear model, where the worst Linf point is a corner of the ball."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from robustlit.mixed.apgd import mixture_apgd, probability_margin
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.confidence import (
    predicted_curve,
    recommend_alpha,
    separation_auc,
    summarise_confidence,
    survives_fooled_standard,
    worst_case_margins,
)

EPS = 0.1


class TwoClassLinear(nn.Module):
    """logits (d(x), 0) with d(x) = a . x + b: the margin of class 0 is tanh(d / 2), of class 1 tanh(-d / 2)."""

    def __init__(self, a: torch.Tensor, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.flatten(1) @ self.a + self.b
        return torch.stack([d, torch.zeros_like(d)], dim=1)


class AlwaysClass(nn.Module):
    """A standard model fully fooled on class-0 examples: all its probability on class 1, everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([-50.0, 50.0]).expand(x.shape[0], 2)


def _toy(n: int = 400, seed: int = 0) -> tuple[TwoClassLinear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model, inputs (unbounded), labels and the closed-form worst-case margins over the Linf ball of radius EPS."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.tensor([1.5, -2.0, 0.5, 1.0])
    x = 1.5 * torch.randn(n, 4, generator=gen)
    model = TwoClassLinear(a, 0.3)
    d = x @ a + 0.3
    y = (torch.rand(n, generator=gen) < 0.5).long()  # labels independent of d: many clean mistakes
    y = torch.where(torch.rand(n, generator=gen) < 0.7, (d < 0).long(), y)  # ... but mostly right
    signed = torch.where(y == 0, d, -d)
    worst = torch.tanh((signed - EPS * a.abs().sum()) / 2)
    return model, x, y, worst


def test_worst_case_margins_reach_the_closed_form_minimum_over_the_ball():
    model, x, y, expected = _toy()
    torch.manual_seed(0)
    margins, points = worst_case_margins(model, x, y, EPS, steps=10, targets=9, bounds=None)
    torch.testing.assert_close(margins, expected, atol=1e-5, rtol=0)
    assert (points - x).abs().max() <= EPS + 1e-6
    torch.testing.assert_close(probability_margin(torch.log_softmax(model(points), 1), y), margins)
    assert (margins <= 0).any() and (margins > 0).any()


def test_the_predicted_curve_is_what_an_attack_on_the_mixture_finds_with_a_fully_fooled_standard_model():
    """With g all on class 1 and h linear, the mixture is right iff h's margin exceeds (1 - alpha) / alpha, and
    its minimum over the ball is the closed form: the prediction is exact, and APGD on the mixture reaches it."""
    model, x, y, expected = _toy()
    keep = y == 0  # the examples on which AlwaysClass is fooled onto h's runner-up
    x, y, expected = x[keep], y[keep], expected[keep]
    alphas = [0.55, 0.7, 0.8, 0.9, 0.95, 1.0]
    curve = predicted_curve(expected, model(x), y, alphas)
    for point in curve:
        alpha = point["alpha"]
        closed_form = ((expected > 0) & (expected >= (1 - alpha) / alpha)).float().mean().item()
        assert point["robust_acc"] == pytest.approx(closed_form)
        mixture = MixedClassifier(AlwaysClass(), model, alpha=alpha)
        torch.manual_seed(1)
        x_adv = mixture_apgd(mixture, x, y, EPS, 20, bounds=None)
        with torch.no_grad():
            measured = (mixture(x_adv).argmax(1) == y).float().mean().item()
        assert measured == pytest.approx(point["robust_acc"], abs=1 / len(y) + 1e-9), alpha
    assert curve[0]["robust_acc"] < curve[-1]["robust_acc"]  # the threshold matters on this toy


def test_survival_rule_and_auc_against_brute_force():
    margins = torch.tensor([-0.2, 0.0, 0.05, 0.1, 0.5, 1.0])
    assert survives_fooled_standard(margins, 1.0).tolist() == [False, False, True, True, True, True]
    assert survives_fooled_standard(margins, 0.9).tolist() == [False, False, False, False, True, True]  # mu = 1/9
    assert not survives_fooled_standard(margins, 0.0).any()
    gen = torch.Generator().manual_seed(3)
    robust, mistakes = torch.rand(30, generator=gen), 0.5 * torch.rand(20, generator=gen)
    pairs = [(r > m) + 0.5 * (r == m) for r, m in itertools.product(robust.tolist(), mistakes.tolist())]
    assert separation_auc(robust, mistakes) == pytest.approx(sum(pairs) / len(pairs))
    assert separation_auc(robust, mistakes[:0]) is None


def test_clean_curve_exact_with_g_and_for_an_ideal_g_without_it():
    gen = torch.Generator().manual_seed(4)
    z_h, z_g = 2 * torch.randn(200, 5, generator=gen), 3 * torch.randn(200, 5, generator=gen)
    y = torch.randint(0, 5, (200,), generator=gen)
    margins = torch.zeros(200)
    with_g = predicted_curve(margins, z_h, y, [0.0, 0.6, 1.0], z_g)
    mixed = torch.log(0.4 * z_g.softmax(1) + 0.6 * z_h.softmax(1))
    assert with_g[1]["clean_acc"] == pytest.approx((mixed.argmax(1) == y).float().mean().item())
    assert with_g[0]["clean_acc"] == pytest.approx((z_g.argmax(1) == y).float().mean().item())
    assert with_g[2]["clean_acc"] == pytest.approx((z_h.argmax(1) == y).float().mean().item())
    ideal = predicted_curve(margins, z_h, y, [0.6], None)[0]
    onehot = torch.nn.functional.one_hot(y, 5).float()
    mixed_ideal = 0.4 * onehot + 0.6 * z_h.softmax(1)
    assert ideal["clean_acc"] == pytest.approx((mixed_ideal.argmax(1) == y).float().mean().item())


def test_recommended_alpha_respects_the_robustness_budget_and_reports_the_gap_recovered():
    curve = [
        {"alpha": 0.8, "clean_acc": 0.98, "robust_acc": 0.20},
        {"alpha": 0.9, "clean_acc": 0.96, "robust_acc": 0.29},
        {"alpha": 0.95, "clean_acc": 0.93, "robust_acc": 0.30},
        {"alpha": 1.0, "clean_acc": 0.90, "robust_acc": 0.30},
    ]
    best = recommend_alpha(curve, 0.02)
    assert best["alpha"] == 0.9 and best["robustness_cost"] == pytest.approx(0.01)
    assert recommend_alpha(curve, 0.0)["alpha"] == 0.95
    y = torch.zeros(4, dtype=torch.long)
    clean = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 0.5], [0.0, 0.5]])  # h: 2 right, 2 mistakes (margin 0.245)
    standard = torch.tensor([[5.0, 0.0]] * 4)  # g: all right
    report = summarise_confidence(y, clean, torch.tensor([0.5, 0.6, -0.5, -0.5]), standard, [0.5, 0.75, 1.0])
    assert report["clean_acc"] == 0.5 and report["robust_acc"] == 0.5 and report["auc"] == 1.0
    assert report["standard_clean_acc"] == 1.0 and report["clean_gap"] == 0.5
    assert report["recommended"]["alpha"] == 0.75  # mu = 1/3: both robust examples kept, both mistakes overridden
    assert report["recommended"]["gap_recovered"] == pytest.approx(1.0)
