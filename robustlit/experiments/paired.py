"""Mean ± std over seeds and paired, Holm-corrected tests of methods against a reference.

Seeds pair the runs: the same seed gives every method the same initial weights, data order and test sets, so
the difference d_k = method_k − reference_k on seed k is tested with a paired t-test over seeds
(``scipy.stats.ttest_rel``), reported with the 95% t confidence interval of mean(d), and the p-values of the
methods compared with one reference are corrected together with Holm's step-down method (statsmodels
``multipletests``). With 3 seeds the t-test has 2 degrees of freedom: only large, consistent differences reach
significance, and "not significant" is not evidence that two methods are equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05


def mean_std(values: Sequence[float]) -> dict[str, object]:
    """``{"values", "mean", "std"}`` with the sample standard deviation (ddof 1; NaN for a single value)."""
    v = [float(x) for x in values]
    return {
        "values": v,
        "mean": float(np.mean(v)),
        "std": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
    }


def paired_difference(values: Sequence[float], reference: Sequence[float], alpha: float = ALPHA) -> dict:
    """Mean of d = values − reference (paired by position), its (1 − alpha) t interval and the paired t-test p.

    A difference that is the same on every seed (common with discrete accuracies on small test sets) has no
    variance estimate: it gets p = NaN (never significant) rather than a spurious p = 0.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two paired sequences of the same length >= 2; got {a.size} and {b.size}")
    d = a - b
    n = d.size
    sd = float(np.std(d, ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n))
    degenerate = sd <= 1e-9 * max(1.0, abs(float(d.mean())))
    p = math.nan if degenerate else float(stats.ttest_rel(a, b).pvalue)
    return {"mean": float(d.mean()), "ci95": [float(d.mean()) - half, float(d.mean()) + half], "p": p}


def paired_tests(values: Mapping[str, Sequence[float]], reference: str, alpha: float = ALPHA) -> dict[str, dict]:
    """Every method of ``values`` (per-seed numbers, same seed order) against ``reference``.

    Returns ``{method: {"mean", "ci95", "p", "p_holm", "significant"}}`` for every method but the reference:
    :func:`paired_difference`, then Holm's correction over the tested methods; ``significant`` means corrected
    p < ``alpha``. Untested (NaN p) differences get ``p_holm`` NaN and ``significant`` False.
    """
    if reference not in values:
        raise ValueError(f"reference {reference!r} is not among the methods {list(values)}")
    others = [name for name in values if name != reference]
    rows = {name: paired_difference(values[name], values[reference], alpha) for name in others}
    holm_correct(list(rows.values()), alpha)
    return rows


def holm_correct(rows: Sequence[dict], alpha: float = ALPHA) -> None:
    """Add ``p_holm`` and ``significant`` (Holm-corrected p < ``alpha``) to rows of :func:`paired_difference` that
    form one family of tests; rows with p = NaN (not tested) get NaN and False."""
    for row in rows:
        row["p_holm"], row["significant"] = math.nan, False
    tested = [row for row in rows if not math.isnan(row["p"])]
    if tested:
        reject, corrected, _, _ = multipletests([row["p"] for row in tested], alpha=alpha, method="holm")
        for row, ok, q in zip(tested, reject, corrected, strict=True):
            row["p_holm"], row["significant"] = float(q), bool(ok)


def verdict(row: Mapping[str, object], higher_is_better: bool) -> str:
    """A paper's claim "the method improves this metric" against a measured difference: ``confirmed`` (significant
    in the claimed direction after Holm), ``reversed`` (significant the other way) or ``not confirmed``."""
    if not row.get("significant"):
        return "not confirmed"
    better = float(row["mean"]) > 0 if higher_is_better else float(row["mean"]) < 0  # type: ignore[arg-type]
    return "confirmed" if better else "reversed"
