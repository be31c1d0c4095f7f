"""GAIRAT and MAIL instance weights (Zhang et al. 2021; Wang et al. 2021)."""

from __future__ import annotations

import math

import pytest
import torch

from robustlit.losses.instance_weights import gairat_weights, mail_weights, probabilistic_margin


def test_gairat_weight_decreases_with_kappa_and_averages_one() -> None:
    kappa = torch.arange(11)
    weights = gairat_weights(kappa, num_steps=10)
    assert weights.mean() == pytest.approx(1.0, rel=1e-6)
    assert weights.argmax() == 0
    assert torch.all(weights[1:] < weights[:-1])


def test_gairat_formula_and_floor_half() -> None:
    kappa = torch.tensor([0, 3, 7])
    raw = gairat_weights(kappa, num_steps=7, lam=-1.0, normalise=False)
    expected = torch.tensor([0.5 * (1 + math.tanh(-1 + 5 * (1 - 2 * k / 7))) for k in (0, 3, 7)])
    assert torch.allclose(raw, expected, atol=1e-6)
    floored = gairat_weights(kappa, num_steps=7, lam=-1.0, normalise=False, floor_half=True)
    expected_floor = torch.tensor([0.5 * (1 + math.tanh(-1 + (3 - k) * 5 / 3)) for k in (0, 3, 7)])
    assert torch.allclose(floored, expected_floor, atol=1e-6)
    assert torch.allclose(gairat_weights(kappa, 10, floor_half=True), gairat_weights(kappa, 10, floor_half=False))
    with pytest.raises(ValueError):
        gairat_weights(torch.tensor([11]), num_steps=10)


def test_probabilistic_margin_known_values() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    logits = probs.clamp_min(1e-12).log()
    margin = probabilistic_margin(logits, torch.tensor([0, 0, 1]))
    assert torch.allclose(margin, torch.tensor([0.2 - 0.7, 0.6 - 0.1, 0.0]), atol=1e-6)


def test_mail_weights_are_the_authors_three_sigmoid_unnormalised() -> None:
    """Wang et al. 2021, mail_loss.py weight_assign: w = 3 · sigmoid(slope · (PM + bias)), slope 1, bias −1.5,
    no batch normalisation (hand values: PM = −1, 0, 1 give 3σ(−2.5), 3σ(−1.5), 3σ(−0.5))."""
    margin = torch.linspace(-1, 1, 21)
    weights = mail_weights(margin)
    assert torch.all(weights[1:] > weights[:-1])
    assert torch.allclose(weights, 3 * torch.sigmoid(margin - 1.5))
    hand = mail_weights(torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(hand, torch.tensor([0.2275745, 0.5472766, 1.1326220]), atol=1e-6)
    assert weights.mean() != pytest.approx(1.0, abs=0.05)  # not normalised: the batch mean varies with the margins
    normalised = mail_weights(margin, normalise=True)
    assert normalised.mean() == pytest.approx(1.0, rel=1e-6)
    assert torch.allclose(normalised, weights * len(weights) / weights.sum())
    assert not mail_weights(margin.requires_grad_(True)).requires_grad
