"""Confidence bounds used by randomized smoothing (Cohen et al. 2019, Section 3).

* CERTIFY: one-sided (1 - alpha) Clopper-Pearson lower bound on p_A from the estimation counts.
* PREDICT: two-sided binomial test of the top-two counts against p = 1/2 (abstain when p > alpha).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binomtest

__all__ = ["binomial_abstain_pvalue", "clopper_pearson_lower"]


def clopper_pearson_lower(successes: int | np.ndarray, trials: int, alpha: float) -> float | np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial proportion.

    ``B(alpha; k, n - k + 1)`` (Beta quantile), defined as 0 for k = 0. This is the lower end of the
    two-sided level-2alpha interval, i.e. statsmodels ``proportion_confint(k, n, alpha=2 * alpha,
    method="beta")[0]`` as used by Cohen et al.'s CERTIFY (docs/smoothing.md). With k = n it equals
    ``alpha ** (1 / n)``.

    Args:
        successes: k, an int or an integer array (broadcast), 0 <= k <= n.
        trials: n >= 1.
        alpha: error probability in (0, 1).

    Returns:
        A float for a scalar k, else an array of the same shape.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    k = np.asarray(successes)
    if k.dtype.kind == "f" and not np.all(k == np.round(k)):
        raise ValueError("successes must be integers")
    k = k.astype(np.int64)
    if np.any(k < 0) or np.any(k > trials):
        raise ValueError(f"successes must lie in [0, trials={trials}], got {successes}")
    # beta.ppf needs a > 0; k = 0 gives the bound 0 (no evidence at all).
    safe_k = np.where(k > 0, k, 1)
    low = np.where(k > 0, beta.ppf(alpha, safe_k, trials - safe_k + 1), 0.0)
    if np.ndim(successes) == 0:
        return float(low)
    return low


def binomial_abstain_pvalue(n1: int, n2: int) -> float:
    """Two-sided binomial-test p-value of ``n1`` successes in ``n1 + n2`` trials at p = 1/2.

    Cohen et al.'s PREDICT (Section 3) abstains when this exceeds alpha. Uses
    ``scipy.stats.binomtest`` (``binom_test`` was removed from SciPy). Returns 1 when n1 + n2 = 0.
    """
    n1, n2 = int(n1), int(n2)
    if n1 < 0 or n2 < 0:
        raise ValueError(f"counts must be non-negative, got {n1}, {n2}")
    if n1 + n2 == 0:
        return 1.0
    return float(binomtest(n1, n1 + n2, p=0.5, alternative="two-sided").pvalue)
