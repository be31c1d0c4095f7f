"""Robustness curves: monotone by construction, ~0 at a large eps for an undefended model; certified curves."""

from __future__ import annotations

import json

import numpy as np
import torch
from matplotlib.figure import Figure

from robustlit.audit import certified_accuracy_curve, robustness_curve, robustness_curve_figure
from robustlit.certify.report import certified_accuracy


def test_curve_of_undefended_model_is_monotone_and_reaches_zero(digits_model) -> None:
    model, x, y = digits_model
    curve = robustness_curve(model, x, y, norm="Linf", eps_list=[0.3, 0.0, 0.05, 0.1, 0.2], steps=20)
    acc = curve["robust_accuracy"]
    assert curve["eps"] == [0.0, 0.05, 0.1, 0.2, 0.3]
    assert acc[0] == curve["clean_accuracy"] > 0.9
    assert all(a >= b for a, b in zip(acc, acc[1:], strict=False)), acc
    assert acc[1] > acc[-1]  # the attack makes progress with eps
    assert acc[-1] <= 0.02, acc  # and breaks the undefended model at a large eps
    json.dumps(curve)


def test_curve_is_monotone_even_when_the_attack_is_not() -> None:
    """An attack that gives up at large eps: the worst case carries its successes to every larger eps."""
    model = torch.nn.Linear(4, 2)  # z_0 = x_0, z_1 = 0.25: class 0 while x_0 > 0.25
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
        model.bias.copy_(torch.tensor([0.0, 0.25]))
    x = torch.full((10, 4), 0.5)
    y = torch.zeros(10, dtype=torch.long)

    def gives_up_at_large_eps(*, eps: float, steps: int, restarts: int):
        def attack(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            shift = torch.zeros_like(xb)
            if eps <= 0.35:
                shift[:5, 0] = -eps  # pushes the first five examples towards class 1
            return xb + shift

        return attack

    eps_list = [0.1, 0.3, 0.4, 0.8]
    curve = robustness_curve(model, x, y, norm="Linf", eps_list=eps_list, steps=1, attack_factory=gives_up_at_large_eps)
    assert curve["clean_accuracy"] == 1.0
    assert curve["attack_accuracy"] == [1.0, 0.5, 1.0, 1.0]  # the attack itself is not monotone
    assert curve["robust_accuracy"] == [1.0, 0.5, 0.5, 0.5]  # the curve is


def test_certified_curve_matches_certified_accuracy_and_is_non_increasing() -> None:
    radii = np.array([0.0, 0.25, 0.5, 0.5, 1.2, 0.7])
    correct = np.array([1, 1, 1, 0, 1, 1], dtype=bool)
    curve = certified_accuracy_curve(radii, correct)
    assert curve["eps"] == [0.0, 0.25, 0.5, 0.7, 1.2] and curve["kind"] == "certified"
    assert curve["robust_accuracy"] == certified_accuracy(radii, correct, curve["eps"])
    acc = curve["robust_accuracy"]
    assert acc[0] == 5 / 6 and acc[-1] == 1 / 6
    assert all(a >= b for a, b in zip(acc, acc[1:], strict=False))
    grid = certified_accuracy_curve(radii, correct, radius_grid=[0.5, 0.0])
    assert grid["eps"] == [0.0, 0.5] and grid["robust_accuracy"] == [5 / 6, 3 / 6]


def test_figure_draws_one_line_per_curve(tmp_path) -> None:
    empirical = {"name": "pgd", "norm": "L2", "eps": [0.0, 0.5, 1.0], "robust_accuracy": [0.9, 0.5, 0.1]}
    certified = certified_accuracy_curve([0.1, 0.6, 0.9], [1, 1, 0])
    fig = robustness_curve_figure([empirical, certified], title="digits")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert ax.get_lines()[1].get_drawstyle() == "steps-post"  # certified accuracy is a step function
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pgd", "certified"]
    assert "L2" in ax.get_xlabel()
    path = tmp_path / "curve.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    labelled = robustness_curve_figure({"A": empirical})
    assert [t.get_text() for t in labelled.axes[0].get_legend().get_texts()] == ["A"]
