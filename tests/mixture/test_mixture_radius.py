"""Certified radii of the mixed classifier (docs/mixed_classifier.md)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from robustlit.certify.mixture_radius import lipschitz_mixture_radius, smoothed_mixture_radius


def test_lipschitz_radius_formula_and_zero_below_the_margin_threshold():
    probs = torch.tensor([[0.70, 0.20, 0.10], [0.50, 0.45, 0.05], [0.34, 0.33, 0.33], [1.0, 0.0, 0.0]])
    margins = torch.tensor([0.50, 0.05, 0.01, 1.0])
    for alpha in (0.5, 0.7, 0.9, 0.99, 1.0):
        mu = (1 - alpha) / alpha
        r = lipschitz_mixture_radius(probs, alpha, lipschitz=2.0)
        expected = torch.clamp(margins - mu, min=0) / 4.0
        torch.testing.assert_close(r, expected)
        assert (r[margins <= mu] == 0).all()
    for alpha in (0.0, 0.2, 0.49):  # alpha < 1/2: mu > 1 >= any margin, no certificate
        assert (lipschitz_mixture_radius(probs, alpha, 1.0) == 0).all()
    per_example = torch.tensor([0.0, 0.9, 0.99, 1.0])
    r = lipschitz_mixture_radius(probs, per_example, 1.0)
    assert torch.isfinite(r).all() and r[0] == 0 and r[3] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        lipschitz_mixture_radius(probs, 0.9, 0.0)


def _softmax_lipschitz(weight: torch.Tensor) -> float:
    """Sound l2 Lipschitz constant of every output of softmax(W x + b).

    grad_x p_k = p_k (W_k - sum_j p_j W_j) = p_k sum_{j != k} p_j (W_k - W_j), whose norm is at most
    p_k (1 - p_k) max_j ||W_k - W_j|| <= max_{j,k} ||W_k - W_j|| / 4 (exact for two classes at p = 1/2).
    """
    return (weight[:, None, :] - weight[None, :, :]).norm(dim=-1).max().item() / 4


def _nearest_flip(weight, bias, x0, alpha, r_max, n_r=200, n_theta=180) -> tuple[float, int]:
    """Brute force on a polar grid: distance to the nearest point where the mixture, with the
    worst-case standard model g (all mass on h's best class other than y), stops predicting y."""
    radii = torch.linspace(0, r_max, n_r, dtype=torch.float64)
    theta = torch.linspace(0, 2 * math.pi, n_theta + 1, dtype=torch.float64)[:-1]
    directions = torch.stack((theta.cos(), theta.sin()), dim=1)
    points = x0 + radii[:, None, None] * directions[None]  # (n_r, n_theta, 2)
    h = torch.softmax(points @ weight.T + bias, dim=-1)
    y = int(torch.softmax(x0 @ weight.T + bias, -1).argmax())
    others = h.clone()
    others[..., y] = -1
    runner_up = others.max(-1).values
    mixed_y = alpha * h[..., y]  # g puts nothing on y ...
    mixed_other = alpha * runner_up + (1 - alpha)  # ... and everything on the runner-up
    flipped = (mixed_y <= mixed_other).any(dim=1)
    if not flipped.any():
        return math.inf, y
    return radii[flipped.nonzero()[0, 0]].item(), y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_lipschitz_radius_is_sound_on_a_2d_toy(n_classes):
    gen = torch.Generator().manual_seed(n_classes)
    weight = 2 * torch.randn(n_classes, 2, generator=gen, dtype=torch.float64)
    bias = torch.randn(n_classes, generator=gen, dtype=torch.float64)
    lip = _softmax_lipschitz(weight)
    checked = 0
    for _ in range(8):
        x0 = 1.5 * torch.randn(2, generator=gen, dtype=torch.float64)
        probs = torch.softmax(x0 @ weight.T + bias, -1)[None]
        for alpha in (0.6, 0.8, 0.95):
            r_cert = lipschitz_mixture_radius(probs, alpha, lip).item()
            if r_cert == 0:
                continue
            # a flip anywhere inside the certified ball would show up on this grid
            flip, _ = _nearest_flip(weight, bias, x0, alpha, r_max=2 * r_cert)
            assert flip >= r_cert, (flip, r_cert)
            checked += 1
    assert checked >= 5


def test_lipschitz_radius_is_tight_for_two_classes_near_the_boundary():
    """Two classes, small margin, alpha near 1: the bound is nearly attained."""
    weight = torch.tensor([[1.5, -0.5], [-0.5, 0.5]], dtype=torch.float64)
    bias = torch.zeros(2, dtype=torch.float64)
    lip = _softmax_lipschitz(weight)
    delta_w = (weight[0] - weight[1]).norm().item()
    assert lip == pytest.approx(delta_w / 4)
    alpha = 0.95
    ratios = []
    for t0 in (0.3, 0.5, 0.8):  # logit gap (W_0 - W_1) x0 = t0 > 0: class 0 predicted
        x0 = t0 * (weight[0] - weight[1]) / delta_w**2
        probs = torch.softmax(x0 @ weight.T + bias, -1)[None]
        r_cert = lipschitz_mixture_radius(probs, alpha, lip).item()
        flip, y = _nearest_flip(weight, bias, x0, alpha, r_max=2 * r_cert, n_r=1000, n_theta=360)
        assert y == 0
        # exact flip distance: p_0 drops to (1 + mu) / 2 along -(W_0 - W_1)
        mu = (1 - alpha) / alpha
        exact = (t0 - math.log((1 + mu) / (1 - mu))) / delta_w
        assert flip == pytest.approx(exact, abs=2 * r_cert / 999 + 1e-9)
        assert r_cert <= exact
        ratios.append(flip / r_cert)
    assert min(ratios) < 1.05, ratios


def test_smoothed_radius_with_alpha_one_is_cohens_two_class_radius():
    p1 = torch.tensor([0.6, 0.75, 0.9, 0.99, 0.999])
    p2 = torch.tensor([0.3, 0.2, 0.05, 0.01, 0.0005])
    r = smoothed_mixture_radius(p1, p2, 1.0, 0.5)
    expected = 0.25 * (norm.ppf(p1.double().numpy()) - norm.ppf(p2.double().numpy()))
    torch.testing.assert_close(r, torch.from_numpy(expected))
    # with p2 = 1 - p1 it is sigma * Phi^-1(p1)
    torch.testing.assert_close(
        smoothed_mixture_radius(p1, 1 - p1, 1.0, 0.5), torch.from_numpy(0.5 * norm.ppf(p1.double().numpy()))
    )


def test_smoothed_radius_matches_the_mu_formula_and_vanishes_for_small_alpha():
    p1, p2, sigma = 0.97, 0.02, 0.25
    for alpha in (0.55, 0.8, 0.95):
        mu = (1 - alpha) / alpha
        expected = sigma / 2 * max(0.0, norm.ppf(p1 / (1 + mu)) - norm.ppf((p2 + mu) / (1 + mu)))
        assert smoothed_mixture_radius(p1, p2, alpha, sigma).item() == pytest.approx(expected, rel=1e-9)
    radii = smoothed_mixture_radius(p1, p2, torch.linspace(0.5, 1.0, 11), sigma)
    assert (radii.diff() > 0).all()  # more weight on the certified model, larger radius
    for alpha in (0.0, 0.3, 0.5):
        r = smoothed_mixture_radius(p1, p2, alpha, sigma)
        assert r.item() == 0.0 and not torch.isnan(r)
    with pytest.raises(ValueError, match="p1"):
        smoothed_mixture_radius(1.2, 0.1, 0.9, sigma)


def test_smoothed_radius_is_sound_for_a_linear_base_classifier():
    """Binary linear base classifier: the smoothed probability of class y at distance d along the
    worst direction is exactly Phi(Phi^-1(p1) - d / sigma). Within the radius the mixture with a
    worst-case g must keep y: alpha H_y > alpha H_other + (1 - alpha)."""
    sigma = 0.5
    for p1 in (0.8, 0.95, 0.999):
        for alpha in (0.6, 0.85, 0.99, 1.0):
            r = smoothed_mixture_radius(p1, 1 - p1, alpha, sigma).item()
            if r == 0:
                continue
            h_y = norm.cdf(norm.ppf(p1) - r * (1 - 1e-9) / sigma)
            assert alpha * h_y - alpha * (1 - h_y) - (1 - alpha) >= -1e-12
