"""Certified l2 radii of Gaussian smoothing: constant sigma (Cohen et al. 2019, Thm. 1) and
input-dependent sigma (Suekenik, Kuvshinov, Guennemann, ICML 2022; docs/smoothing.md).

Input-dependent certificate (Suekenik et al. 2022; docs/smoothing.md). If sigma(.) is r-semi-elastic, a point x1 at l2
distance a from x0 has sigma1 = sigma(x1) in [sigma0 e^{-ra}, sigma0 e^{ra}]. By Neyman-Pearson the
largest probability that N(x1, sigma1^2 I) can give to a set B with N(x0, sigma0^2 I)(B) <= p_B is
(rho = sigma1 / sigma0, lambda0 = a^2 / (sigma0^2 (1 - rho^2)^2), lambda1 = rho^2 lambda0)

    rho < 1:  xi_<(a) = F_{chi2_N(lambda1)}( Q_{chi2_N(lambda0)}(p_B) / rho^2 )
    rho > 1:  xi_>(a) = 1 - F_{chi2_N(lambda1)}( Q_{chi2_N(lambda0)}(1 - p_B) / rho^2 )
    rho = 1:  Cohen's limit Phi(a / sigma0 - Phi^-1(1 - p_B)).

x1 keeps class A when the worst case over admissible sigma1 is below 1/2 (p_B = 1 - p_A_lower).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2, ncx2, norm

__all__ = [
    "cohen_radius",
    "curse_of_dimensionality_ratio_bounds",
    "input_dependent_radius",
    "worst_case_xi",
]

# Non-centralities above this are not evaluated: SciPy/Boost's ncx2 gets slow (~0.4 ms per quantile at
# 1e6, ~6 ms at 1e8) and returns NaN beyond ~1e11. Since lambda0 = a^2 / (sigma0^2 (1 - rho^2)^2), points
# with rho^2 closer to 1 than a / (sigma0 sqrt(_MAX_NONCENTRALITY)) are moved outwards to that distance.
# xi is quasi-convex in sigma1 (it only grows away from a shallow dip next to sigma0), so this can only
# raise the maximum: conservative. Side effect: every rate below ~1 / (2 sigma0 sqrt(1e6)) gives the
# radius of that rate, a little below Cohen's (< 0.5 % at N = 3072, ~4 % at N = 150528).
_MAX_NONCENTRALITY = 1e6


def cohen_radius(p_a_lower: float, sigma: float) -> float:
    """Cohen et al.'s certified radius ``sigma * Phi^-1(p_A_lower)`` (Cohen et al. 2019, Thm. 1).

    Returns 0 (abstain) when ``p_a_lower <= 1/2``, and ``inf`` when ``p_a_lower == 1``.
    """
    _check_probability(p_a_lower)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if p_a_lower <= 0.5:
        return 0.0
    return float(sigma * norm.ppf(p_a_lower))


def worst_case_xi(
    a: float | np.ndarray,
    sigma0: float,
    sigma1: float | np.ndarray,
    p_b: float,
    dim: int,
) -> np.ndarray:
    """Neyman-Pearson worst case ``xi`` (docs/smoothing.md) (elementwise over broadcast a, sigma1).

    The largest probability ``N(x1, sigma1^2 I)`` can put on a set that ``N(x0, sigma0^2 I)`` gives at
    most ``p_b``, with ``||x1 - x0|| = a`` in dimension ``dim``. ``sigma1 == sigma0`` uses Cohen's
    closed form; ``a == 0`` uses central chi-square; NaN from SciPy is returned as 1 (not certified).
    """
    a_arr, s1 = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(sigma1, dtype=np.float64))
    if np.any(a_arr < 0) or np.any(s1 <= 0) or sigma0 <= 0:
        raise ValueError("need a >= 0, sigma0 > 0 and sigma1 > 0")
    if not 0.0 <= p_b <= 1.0:
        raise ValueError(f"p_b must lie in [0, 1], got {p_b}")
    rho2 = (s1 / sigma0) ** 2
    out = np.empty(a_arr.shape, dtype=np.float64)

    same = rho2 == 1.0
    out[same] = norm.cdf(a_arr[same] / sigma0 - norm.isf(p_b))

    with np.errstate(divide="ignore", invalid="ignore"):
        lam0 = np.where(same, 0.0, a_arr**2 / (sigma0**2 * (1.0 - rho2) ** 2))
    out[~same] = _xi_from_noncentrality(lam0[~same], rho2[~same], p_b, dim)
    out[np.isnan(out)] = 1.0
    return out


def input_dependent_radius(
    p_a_lower: float,
    sigma0: float,
    rate: float,
    dim: int,
    num_radius_steps: int = 500,
    num_sigma_steps: int = 3,
    max_radius_in_sigmas: float = 5.0,
) -> float:
    """Certified radius for an r-semi-elastic sigma(x) (Suekenik et al. 2022; docs/smoothing.md).

    The radius is the largest grid point ``a_i = i * max_radius_in_sigmas * sigma0 / num_radius_steps``
    such that, for every grid point ``a' <= a_i``, the worst case of ``xi(a')`` over ``num_sigma_steps``
    log-spaced sigma1 in ``[sigma0 e^{-r a'}, sigma0 e^{r a'}]`` (both endpoints always included) and
    over sigma1 = sigma0 (Cohen's limit) is below 1/2. Hence it never exceeds ``cohen_radius`` (which is
    returned exactly for ``rate == 0``) and, since xi grows as sigma1 moves away from sigma0 (apart from
    a tiny dip next to sigma0), it does not increase with ``rate``. A coarse grid errs on the small side.
    sigma1 values within ~1e-3 (relative) of sigma0 are evaluated slightly further out, where SciPy's
    ncx2 is fast and accurate (see ``_MAX_NONCENTRALITY``); this too can only lower the radius.

    Args:
        p_a_lower: lower confidence bound on p_A (p_B = 1 - p_a_lower).
        sigma0: sigma(x0) at the certified input.
        rate: semi-elasticity r >= 0 of sigma(.) (|log sigma(x) - log sigma(x')| <= r ||x - x'||_2).
        dim: input dimension N (number of scalars in x).
        num_radius_steps: resolution of the radius grid.
        num_sigma_steps: number of log-spaced sigma1 values per radius (>= 2). xi is quasi-convex in
            sigma1 (checked numerically), so the endpoints carry the maximum; inner points are a safety net.
        max_radius_in_sigmas: the grid ends at this many sigma0 (never report a larger radius).

    Returns:
        The certified radius (0 when ``p_a_lower <= 1/2`` or when even the first grid point fails).
    """
    _check_probability(p_a_lower)
    if rate < 0:
        raise ValueError(f"rate (semi-elasticity) must be >= 0, got {rate}")
    if dim < 1 or num_radius_steps < 1 or num_sigma_steps < 2 or max_radius_in_sigmas <= 0:
        raise ValueError("need dim >= 1, num_radius_steps >= 1, num_sigma_steps >= 2, max_radius_in_sigmas > 0")
    cohen = cohen_radius(p_a_lower, sigma0)
    if rate == 0 or cohen == 0.0:
        return cohen
    p_b = 1.0 - p_a_lower
    step = max_radius_in_sigmas * sigma0 / num_radius_steps
    radii = step * np.arange(1, num_radius_steps + 1)
    # The sigma1 = sigma0 term alone forbids a >= Cohen's radius (xi = Phi(a/sigma0 - Phi^-1(p_A)) >= 1/2).
    radii = radii[radii < cohen]
    offsets = np.linspace(-1.0, 1.0, num_sigma_steps)
    certified = 0.0
    chunk = 32
    for start in range(0, radii.size, chunk):
        a = radii[start : start + chunk, None]
        worst = _worst_xi_over_admissible_sigma(a, sigma0, rate, p_b, dim, offsets)
        failed = np.flatnonzero(~(worst < 0.5))
        if failed.size:
            first = start + int(failed[0])
            return float(radii[first - 1]) if first > 0 else 0.0
        certified = float(radii[min(start + chunk, radii.size) - 1])
    return certified


def curse_of_dimensionality_ratio_bounds(dim: int, p_b: float) -> tuple[float, float]:
    """Admissible ``sigma1 / sigma0`` as a -> 0 (docs/smoothing.md): ``(sqrt(Q(p_B)/m), sqrt(Q(1-p_B)/m))``.

    Q is the central chi2_N quantile and m its median: even two Gaussians with the same mean are told
    apart by their norms when N is large, so only ratios strictly inside these bounds certify anything.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not 0.0 < p_b < 0.5:
        raise ValueError(f"p_b must lie in (0, 1/2), got {p_b}")
    median = chi2.median(dim)
    low = math.sqrt(chi2.ppf(p_b, dim) / median)
    high = math.sqrt(chi2.isf(p_b, dim) / median)
    return low, high


def _worst_xi_over_admissible_sigma(
    a: np.ndarray, sigma0: float, rate: float, p_b: float, dim: int, offsets: np.ndarray
) -> np.ndarray:
    """max over the sigma1 grid and sigma0 (Cohen) of xi, for a column of radii a (M, 1) -> (M,)."""
    log_ratio = rate * a * offsets[None, :]
    rho2 = np.exp(2.0 * log_ratio)
    with np.errstate(divide="ignore"):
        lam0 = a**2 / (sigma0**2 * (1.0 - rho2) ** 2)
    # Keep lambda0 <= _MAX_NONCENTRALITY by moving near-sigma0 points outwards (see the constant); the
    # moved points all share lambda0 = _MAX_NONCENTRALITY, so their quantile is computed once.
    pushed = lam0 > _MAX_NONCENTRALITY
    min_gap = np.broadcast_to(a / (sigma0 * math.sqrt(_MAX_NONCENTRALITY)), rho2.shape)
    rho2 = np.where(pushed, 1.0 + np.sign(log_ratio) * min_gap, rho2)
    lam0 = np.where(pushed, _MAX_NONCENTRALITY, lam0)
    moved = log_ratio != 0.0  # offset 0 is sigma0 itself: Cohen's term below.
    xi = np.zeros(rho2.shape)
    xi[moved] = _xi_from_noncentrality(lam0[moved], rho2[moved], p_b, dim)
    cohen = norm.cdf(a[:, 0] / sigma0 - norm.isf(p_b))
    return np.maximum(xi.max(axis=1), cohen)


def _xi_from_noncentrality(lam0: np.ndarray, rho2: np.ndarray, p_b: float, dim: int) -> np.ndarray:
    """xi_< (rho2 < 1) or xi_> (rho2 > 1) from lambda0 and rho^2 = (sigma1/sigma0)^2, 1-d arrays."""
    out = np.empty(lam0.shape)
    lam1 = rho2 * lam0
    lower = rho2 < 1.0
    upper = ~lower
    # Quantiles are the expensive part (root finding); compute each distinct lambda0 once.
    if lower.any():
        uniq, inv = np.unique(lam0[lower], return_inverse=True)
        q = _ncx2_ppf(p_b, dim, uniq)[inv.ravel()]
        out[lower] = _ncx2_cdf(q / rho2[lower], dim, lam1[lower])
    if upper.any():
        uniq, inv = np.unique(lam0[upper], return_inverse=True)
        q = _ncx2_isf(p_b, dim, uniq)[inv.ravel()]
        out[upper] = _ncx2_sf(q / rho2[upper], dim, lam1[upper])
    out[np.isnan(out)] = 1.0
    return out


def _ncx2_ppf(p: float, df: int, nc: np.ndarray) -> np.ndarray:
    central = nc == 0
    return np.where(central, chi2.ppf(p, df), ncx2.ppf(p, df, np.where(central, 1.0, nc)))


def _ncx2_isf(p: float, df: int, nc: np.ndarray) -> np.ndarray:
    central = nc == 0
    return np.where(central, chi2.isf(p, df), ncx2.isf(p, df, np.where(central, 1.0, nc)))


def _ncx2_cdf(x: np.ndarray, df: int, nc: np.ndarray) -> np.ndarray:
    central = nc == 0
    return np.where(central, chi2.cdf(x, df), ncx2.cdf(x, df, np.where(central, 1.0, nc)))


def _ncx2_sf(x: np.ndarray, df: int, nc: np.ndarray) -> np.ndarray:
    central = nc == 0
    return np.where(central, chi2.sf(x, df), ncx2.sf(x, df, np.where(central, 1.0, nc)))


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p_a_lower must lie in [0, 1], got {p}")
