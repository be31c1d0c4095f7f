"""MixedNUTS transform, hard-max mixture and parameter search (Bai et al. 2024; docs/mixed_classifier.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.special import erf

from robustlit.mixed.mixednuts import (
    GELU_ARGMIN,
    HARD_MAX_LOG_FLOOR,
    mixednuts_log_probs,
    mixednuts_monotone_mask,
    mixednuts_transform,
    search_mixednuts_parameters,
)


def _np_transform(z: np.ndarray, s: float, c: float, p: float, k: int = 250) -> np.ndarray:
    """Independent numpy version of M_h (float64, exact GELU via erf)."""
    top = np.sort(z, axis=1)[:, ::-1][:, : min(k, z.shape[1])]
    zt = (z - top.mean(1, keepdims=True)) / np.sqrt(top.var(1, ddof=1, keepdims=True) + 1e-8)
    t = zt + c
    u = t * 0.5 * (1 + erf(t / np.sqrt(2)))
    return s * np.sign(u) * np.abs(u) ** p


def _np_softmax(m: np.ndarray) -> np.ndarray:
    e = np.exp(m - m.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _random_logits(n: int, k: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("k", [250, 6])
def test_transform_matches_an_independent_implementation(k):
    z = _random_logits(50, 10, seed=0)
    for s, c, p in [(5.0, -1.1, 4.0), (0.6116, -2.1429, 3.5714), (1.0, 0.0, 1.0)]:
        out = mixednuts_transform(z, s, c, p, k=k)
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), _np_transform(z.double().numpy(), s, c, p, k), rtol=1e-5, atol=1e-5)
    out64 = mixednuts_transform(z.double(), 5.0, -1.1, 4.0, k=k)
    np.testing.assert_allclose(out64.numpy(), _np_transform(z.double().numpy(), 5.0, -1.1, 4.0, k), rtol=1e-12)


def test_hard_max_mixture_overrides_iff_transformed_margin_exceeds_mu():
    """With a hard-max g, the mixture predicts h's class y iff q_y - q_{g's class} > (1-a)/a."""
    z_g, z_h = _random_logits(2000, 10, seed=1), _random_logits(2000, 10, seed=2)
    s, c, p = 1.0, -0.5, 2.0
    q = torch.from_numpy(_np_softmax(_np_transform(z_h.double().numpy(), s, c, p)))
    y_h, y_g = q.argmax(1), z_g.argmax(1)
    rows = torch.arange(2000)
    outcomes = set()
    for alpha in (0.6, 0.75, 0.9, 0.99):
        pred = mixednuts_log_probs(z_g, z_h, s, c, p, alpha).argmax(1)
        mu = (1 - alpha) / alpha
        gap = q[rows, y_h] - q[rows, y_g]
        clear = (gap - mu).abs() > 1e-6  # skip numerical ties
        expected_h = (y_h == y_g) | (gap > mu)
        assert torch.equal(pred[clear] == y_h[clear], expected_h[clear])
        assert torch.equal(pred[clear & ~expected_h], y_g[clear & ~expected_h])  # otherwise g's class
        outcomes |= {bool(v) for v in expected_h[y_h != y_g]}
    assert outcomes == {True, False}  # both branches were exercised


def test_mixednuts_log_probs_are_finite_normalised_and_exact_at_the_endpoints():
    z_g, z_h = _random_logits(64, 10, seed=3), _random_logits(64, 10, seed=4)
    for alpha in (0.0, 0.5, 0.99875, 1.0, torch.linspace(0, 1, 64)):
        out = mixednuts_log_probs(z_g, z_h, 5.0, -1.1, 4.0, alpha)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        assert out.min() >= HARD_MAX_LOG_FLOOR - 1
        torch.testing.assert_close(out.exp().sum(1), torch.ones(64))
    out0 = mixednuts_log_probs(z_g, z_h, 5.0, -1.1, 4.0, 0.0)
    assert torch.equal(out0.argmax(1), z_g.argmax(1))
    assert (out0.exp().max(1).values == 1).all()
    out1 = mixednuts_log_probs(z_g, z_h, 5.0, -1.1, 4.0, 1.0)
    torch.testing.assert_close(out1, torch.log_softmax(mixednuts_transform(z_h.double(), 5.0, -1.1, 4.0), 1).float())


@pytest.mark.parametrize(("s", "c", "p"), itertools.product([0.05, 1.0, 5.0], [-1.1, -0.5, 0.0], [1.0, 2.5, 4.0]))
def test_transform_is_monotone_where_gelu_is_increasing(s, c, p):
    """Classes with z~ + c >= GELU_ARGMIN keep their order, and dM_k/dz_k >= 0 there."""
    z = _random_logits(100, 10, seed=5).double()
    out = mixednuts_transform(z, s, c, p)
    mask = mixednuts_monotone_mask(z, c)
    assert mask.any(1).all()  # the top class is always in the monotone region for these c
    zi, zj = z[:, :, None], z[:, None, :]
    both = mask[:, :, None] & mask[:, None, :]
    higher = (zi > zj) & both
    assert (out[:, :, None] >= out[:, None, :])[higher].all()
    # the predicted class survives when the top class has z~ + c > 0 (positive output)
    top_positive = ((z.max(1).values - z.mean(1)) / z.std(1) + c) > 0
    assert top_positive.sum() >= 50
    assert torch.equal(out.argmax(1)[top_positive], z.argmax(1)[top_positive])
    x = z.clone().requires_grad_(True)
    jac_diag = torch.stack(
        [torch.autograd.grad(mixednuts_transform(x, s, c, p)[:, k].sum(), x)[0][:, k] for k in range(10)], 1
    )
    assert (jac_diag[mask] >= -1e-9).all()


def test_transform_can_reorder_classes_below_the_gelu_minimum():
    """The documented caveat: with a very negative c, low-ranked classes can swap order."""
    z = _random_logits(200, 10, seed=6).double()
    c = -3.0
    out = mixednuts_transform(z, 1.0, c, 1.0)
    mask = mixednuts_monotone_mask(z, c)
    assert (~mask).any()
    swapped = (z[:, :, None] > z[:, None, :]) & (out[:, :, None] < out[:, None, :])
    assert swapped.any()
    assert (swapped & mask[:, :, None] & mask[:, None, :]).sum() == 0
    # a top class with z~ + c in (GELU_ARGMIN, 0) can lose the argmax to a class below the minimum
    z_top = torch.tensor([[2.0, 1.0, 0.0, -1.0, -8.0]], dtype=torch.float64)
    zt = (z_top - z_top.mean()) / z_top.std()
    c_mid = -0.4 - zt[0, 0].item()  # top class at z~ + c = -0.4
    assert GELU_ARGMIN < zt[0, 0].item() + c_mid < 0
    assert mixednuts_transform(z_top, 1.0, c_mid, 1.0).argmax().item() != 0


def _np_objective(za: np.ndarray, zb: np.ndarray, s: float, c: float, p: float, keep: float) -> tuple[float, float]:
    def margins(z: np.ndarray) -> np.ndarray:
        q = np.sort(_np_softmax(_np_transform(z, s, c, p)), axis=1)
        return q[:, -1] - q[:, -2]

    cutoff = float(np.percentile(margins(za), 100 * (1 - keep)))
    return float(np.mean(margins(zb) >= min(cutoff, 1 - 1e-9))), cutoff


def test_grid_search_returns_the_brute_force_argmin():
    gen = torch.Generator().manual_seed(7)
    # set (a): attacked but still correct, confident; set (b): clean mistakes with a close runner-up
    za = torch.randn(300, 10, generator=gen)
    za[:, 0] += 4.0 + torch.rand(300, generator=gen) * 2
    zb = torch.randn(200, 10, generator=gen)
    boost = 2.0 + torch.rand(200, generator=gen) * 2
    zb[:, 0] += boost
    zb[:, 1] += boost - torch.rand(200, generator=gen)
    s_grid, c_grid, p_grid = [0.1, 1.0, 5.0], [-1.5, -0.5, 0.0], [1.0, 2.0, 4.0]
    result = search_mixednuts_parameters(za, zb, s_grid, c_grid, p_grid, keep_fraction=0.985)
    table = {
        (s, c, p): _np_objective(za.double().numpy(), zb.double().numpy(), s, c, p, 0.985)
        for s, c, p in itertools.product(s_grid, c_grid, p_grid)
    }
    objectives = np.array([v[0] for v in table.values()])
    assert objectives.max() - objectives.min() > 0.1  # the choice matters on this data
    assert (objectives == objectives.min()).sum() == 1  # a unique minimiser
    best_key = min(table, key=lambda key: table[key][0])
    assert (result["s"], result["c"], result["p"]) == best_key
    assert result["objective"] == pytest.approx(table[best_key][0])
    assert result["cutoff"] == pytest.approx(table[best_key][1], rel=1e-9)
    assert result["alpha"] == pytest.approx(1 / (1 + table[best_key][1]), rel=1e-9)
    assert 0.5 < result["alpha"] <= 1.0


def test_grid_search_on_a_handcrafted_example():
    """Three classes, s = p = 1, keep_fraction = 1 (cutoff = smallest set-(a) margin).

    Set (a): z = [1, 0, 0], standardised [1.155, -0.577, -0.577]. Set (b): z = [1, 0.5, 0],
    standardised [1, 0, -1]. With c = 0 the GELU outputs are [1.006, -0.163, -0.163] and
    [0.841, 0, -0.159], softmax margins 0.425 and 0.316: the clean mistake stays below the cutoff,
    objective 0, alpha = 1 / 1.425.
    """
    za = torch.tensor([[1.0, 0.0, 0.0]])
    zb = torch.tensor([[1.0, 0.5, 0.0]])
    result = search_mixednuts_parameters(za, zb, [1.0], [-2.5, 0.0], [1.0], keep_fraction=1.0)
    assert result["c"] == 0.0 and result["objective"] == 0.0
    assert result["cutoff"] == pytest.approx(0.425, abs=2e-3)
    assert result["alpha"] == pytest.approx(1 / (1 + result["cutoff"]))
    assert result["grid_points"] == 2 and result["refused_predictions"] == 1  # c = -2.5, below


def test_degenerate_grid_points_are_refused():
    """With c = -2.5 every class is in GELU's decreasing region: the two tied low classes of set (a) come out on
    top (h's prediction changes) and its margin, the cutoff, is 0 (alpha 1). With s = 1e-9 the order is kept but the
    transformed margins underflow (cutoff about 1e-9). Neither may win, even with the best objective."""
    za = torch.tensor([[1.0, 0.0, 0.0]])
    zb = torch.tensor([[1.0, 0.5, 0.0]])
    with pytest.raises(ValueError, match=r"all 1 grid points were refused \(1 change"):
        search_mixednuts_parameters(za, zb, [1.0], [-2.5], [1.0], keep_fraction=1.0)
    with pytest.raises(ValueError, match=r"0 change the robust model's predictions .*, 1 have a cutoff below"):
        search_mixednuts_parameters(za, zb, [1e-9], [0.0], [1.0], keep_fraction=1.0)
    # the set-(b) margin at s = 1e-9 lies below the cutoff too (objective 0, as good as s = 1): refused all the same
    result = search_mixednuts_parameters(za, zb, [1e-9, 1.0], [-2.5, 0.0], [1.0], keep_fraction=1.0)
    assert (result["s"], result["c"]) == (1.0, 0.0)
    assert (result["refused_predictions"], result["refused_underflow"]) == (2, 1)
    assert result["alpha"] < 0.75


def test_invalid_parameters_are_rejected():
    z = _random_logits(4, 10, seed=8)
    with pytest.raises(ValueError, match="s > 0"):
        mixednuts_transform(z, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="k >= 2"):
        mixednuts_transform(z, 1.0, 0.0, 1.0, k=1)
    with pytest.raises(ValueError, match="empty"):
        search_mixednuts_parameters(z, z, [], [0.0], [1.0])
    assert GELU_ARGMIN == pytest.approx(-0.7518, abs=1e-4)
