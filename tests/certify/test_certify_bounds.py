"""Clopper-Pearson and binomial-test checks (Cohen et al. 2019; docs/smoothing.md)."""

import numpy as np
import pytest
from scipy.stats import beta, binomtest
from statsmodels.stats.proportion import proportion_confint

from robustlit.certify import binomial_abstain_pvalue, clopper_pearson_lower


@pytest.mark.parametrize("n", [1, 10, 100, 1000, 100_000])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_all_votes_gives_alpha_to_the_one_over_n(n: int, alpha: float) -> None:
    assert clopper_pearson_lower(n, n, alpha) == pytest.approx(alpha ** (1.0 / n), rel=1e-10)


def test_matches_scipy_beta_quantile_and_statsmodels() -> None:
    n, alpha = 200, 0.001
    k = np.arange(0, n + 1)
    low = clopper_pearson_lower(k, n, alpha)
    assert isinstance(low, np.ndarray) and low.shape == k.shape
    assert low[0] == 0.0
    np.testing.assert_allclose(low[1:], beta.ppf(alpha, k[1:], n - k[1:] + 1), rtol=1e-12)
    sm = np.array([proportion_confint(int(kk), n, alpha=2 * alpha, method="beta")[0] for kk in k])
    np.testing.assert_allclose(low, sm, rtol=1e-9, atol=1e-12)


def test_below_empirical_frequency_and_monotone_in_k() -> None:
    n = 1000
    k = np.arange(0, n + 1)
    low = clopper_pearson_lower(k, n, 0.01)
    assert np.all(low <= k / n)
    assert np.all(low[1:] < k[1:] / n)  # strictly below whenever k > 0
    assert np.all(np.diff(low) > 0)


def test_scalar_input_gives_float_and_bad_inputs_raise() -> None:
    assert isinstance(clopper_pearson_lower(3, 10, 0.05), float)
    with pytest.raises(ValueError):
        clopper_pearson_lower(11, 10, 0.05)
    with pytest.raises(ValueError):
        clopper_pearson_lower(-1, 10, 0.05)
    with pytest.raises(ValueError):
        clopper_pearson_lower(3, 10, 0.0)
    with pytest.raises(ValueError):
        clopper_pearson_lower(3, 0, 0.05)


def test_binomial_abstain_pvalue() -> None:
    assert binomial_abstain_pvalue(50, 50) == pytest.approx(1.0)
    assert binomial_abstain_pvalue(0, 0) == 1.0
    assert binomial_abstain_pvalue(60, 40) == pytest.approx(binomtest(60, 100, 0.5).pvalue)
    assert binomial_abstain_pvalue(60, 40) == pytest.approx(binomial_abstain_pvalue(40, 60))
    assert binomial_abstain_pvalue(100, 0) < 1e-29
