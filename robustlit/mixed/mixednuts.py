"""MixedNUTS: training-free nonlinear mixing of a standard and a robust classifier.

Bai, Zhou, Patel, Sojoudi (TMLR 2024, arXiv 2402.02263), "MixedNUTS: Training-Free Accuracy-Robustness
Balance via Nonlinearly Mixed Classifiers"; see docs/mixed_classifier.md.
The robust logits z_h go through ``M_h(z) = s * sign(u) * |u|^p`` with ``u = GELU(z~ + c)`` and
``z~`` the logits standardised over their top-k; the standard model contributes a hard max
(one-hot) "probability"; the two are mixed with a constant alpha. The three parameters (s, c, p)
and alpha come from a grid search on the robust model's margins
(:func:`search_mixednuts_parameters`). Pure torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from robustlit.mixed.mixing_rule import mix_log_probs

__all__ = [
    "GELU_ARGMIN",
    "HARD_MAX_LOG_FLOOR",
    "MIN_CUTOFF",
    "hard_max_log_probs",
    "mixednuts_log_probs",
    "mixednuts_monotone_mask",
    "mixednuts_transform",
    "search_mixednuts_parameters",
]

#: log of a zero "probability" of the hard-max standard model. A finite value rather than -inf,
#: so that downstream code that subtracts log-probabilities (DLR loss, log_softmax of the output,
#: -inf - -inf) never produces NaN; exp(-1e4) is exactly 0 in every float format, so the mixture
#: is unchanged, and -1e4 is representable in float16.
HARD_MAX_LOG_FLOOR = -1.0e4

#: GELU is decreasing below this point (its minimum, about -0.17 at t = -0.7518).
GELU_ARGMIN = -0.751791524693564


def _standardise(logits: Tensor, k: int) -> Tensor:
    """(z - mean_topk(z)) / sqrt(var_topk(z) + 1e-8) in float64, unbiased variance."""
    z = logits.double().clamp(-1e15, 1e15)
    n_top = min(k, z.shape[1])
    if n_top < 2:
        raise ValueError(f"the top-k standardisation needs k >= 2 and at least 2 classes, got k={k}")
    top = z if n_top == z.shape[1] else z.topk(n_top, dim=1).values
    mean = top.mean(dim=1, keepdim=True)
    var = top.var(dim=1, keepdim=True)
    return (z - mean) / torch.sqrt(var + 1e-8)


def _transform64(logits: Tensor, s: float, c: float, p: float, k: int) -> Tensor:
    if not (s > 0 and p > 0):
        raise ValueError(f"MixedNUTS needs s > 0 and p > 0, got s={s}, p={p}")
    u = F.gelu(_standardise(logits, k) + c)
    return s * torch.sign(u) * u.abs().pow(p)


def mixednuts_transform(logits: Tensor, s: float, c: float, p: float, k: int = 250) -> Tensor:
    """MixedNUTS logit map ``M_h(z) = s * sign(u) * |u|^p``, ``u = GELU(z~ + c)`` (Bai et al. 2024).

    ``z~`` standardises each row by the mean and unbiased variance (+1e-8) of its top-k logits
    (all logits when k >= K). Computed in float64, returned in the input dtype. Use p >= 1: for
    p < 1 the gradient at u = 0 is infinite. For s > 0 and p >= 1 the map keeps the mutual order
    of the classes whose ``z~ + c >= GELU_ARGMIN`` (see :func:`mixednuts_monotone_mask`); below that
    GELU decreases towards 0 from below, so low-ranked classes may swap, and they may even overtake
    a top class whose ``z~ + c`` lies in (GELU_ARGMIN, 0). The top class stays on top whenever its
    ``z~ + c > 0`` (then its output is positive and every class with ``z~ + c <= 0`` is not).
    """
    return _transform64(logits, s, c, p, k).to(logits.dtype)


def mixednuts_monotone_mask(logits: Tensor, c: float, k: int = 250) -> Tensor:
    """(N, K) bool: classes in the region where the transform is increasing (``z~ + c >= GELU_ARGMIN``).

    Classes inside the mask keep their mutual order under the transform. Use it to report whether a
    chosen c keeps the ranking of the top classes; the predicted class is preserved when the top
    class has ``z~ + c > 0`` (see :func:`mixednuts_transform`).
    """
    return (_standardise(logits, k) + c) >= GELU_ARGMIN


def hard_max_log_probs(logits: Tensor) -> Tensor:
    """log(onehot(argmax z)) with :data:`HARD_MAX_LOG_FLOOR` in place of log 0 (float64)."""
    index = logits.argmax(dim=1, keepdim=True)
    out = torch.full(logits.shape, HARD_MAX_LOG_FLOOR, dtype=torch.float64, device=logits.device)
    return out.scatter(1, index, 0.0)


def mixednuts_log_probs(
    logits_std: Tensor,
    logits_rob: Tensor,
    s: float,
    c: float,
    p: float,
    alpha: float | Tensor,
    k: int = 250,
) -> Tensor:
    """MixedNUTS output ``log((1 - alpha) * onehot(argmax z_g) + alpha * softmax(M_h(z_h)))``.

    The standard model enters through a hard max (no gradient: attacks need a differentiable
    surrogate, see docs/mixed_classifier.md). Its log-probabilities use the finite floor
    :data:`HARD_MAX_LOG_FLOOR` instead of -inf, which changes no probability. The mixture is
    computed in float64 and returned in the robust logits' dtype (at least float32). The mixture
    predicts h's class y iff ``q_y - q_{g's class} > (1 - alpha) / alpha`` with ``q = softmax(M_h)``.
    """
    transformed = _transform64(logits_rob, s, c, p, k)
    out = mix_log_probs(hard_max_log_probs(logits_std), transformed, alpha)
    return out.to(torch.promote_types(logits_rob.dtype, torch.float32))


def _prob_margin(transformed: Tensor) -> Tensor:
    top2 = transformed.softmax(dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


#: a grid point whose cutoff lies below this is refused: its transform has flattened h's probabilities (the margins
#: underflow), and alpha = 1 / (1 + cutoff) would be h alone to one part in a million
MIN_CUTOFF = 1e-6


def search_mixednuts_parameters(
    rob_logits_attacked_correct: Tensor,
    rob_logits_clean_wrong: Tensor,
    s_grid: Sequence[float],
    c_grid: Sequence[float],
    p_grid: Sequence[float],
    keep_fraction: float = 0.985,
    k: int = 250,
    min_cutoff: float = MIN_CUTOFF,
) -> dict[str, float]:
    """Grid search of (s, c, p) and alpha (Bai et al. 2024; ``calc_spca`` of the MixedNUTS code).

    For each grid point: ``m_a`` = transformed probability margins (top-1 minus top-2) of the robust
    model on set (a), attacked examples it classifies correctly; ``cutoff`` = the
    (100 - 100 * keep_fraction)-th percentile of ``m_a`` (linear interpolation, as numpy), so the
    mixture keeps about ``keep_fraction`` of h's robust accuracy; objective = fraction of the margins
    on set (b), clean examples h misclassifies, that are >= cutoff (mistakes where h would still
    override g). Returns the minimiser (first in s, c, p order among ties) as
    ``{"s", "c", "p", "alpha", "objective", "cutoff", "grid_points", "refused_predictions",
    "refused_underflow"}`` with ``alpha = 1 / (1 + cutoff)``.

    Degenerate grid points are refused: one whose transform changes h's predicted class on any row of either
    set (GELU's decreasing branch, docs/mixed_classifier.md), and one whose cutoff is below ``min_cutoff``
    (:data:`MIN_CUTOFF`: the transformed margins underflow, alpha would be about 1). If every point is refused
    the search fails with the counts. When the cutoff saturates at 1 the comparison uses ``1 - 1e-9``
    instead, so saturated margins on set (b) still count as overrides.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must lie in (0, 1], got {keep_fraction}")
    if len(s_grid) == 0 or len(c_grid) == 0 or len(p_grid) == 0:
        raise ValueError("the s, c and p grids must not be empty")
    if rob_logits_attacked_correct.shape[0] == 0 or rob_logits_clean_wrong.shape[0] == 0:
        raise ValueError("both logit sets must be non-empty")
    sets = (rob_logits_attacked_correct, rob_logits_clean_wrong)
    predictions = [z.argmax(dim=1) for z in sets]
    best: dict[str, float] | None = None
    refused = {"refused_predictions": 0, "refused_underflow": 0}
    for s in s_grid:
        for c in c_grid:
            for p in p_grid:
                transformed = [_transform64(z, s, c, p, k) for z in sets]
                if any(
                    not torch.equal(t.argmax(dim=1), pred) for t, pred in zip(transformed, predictions, strict=True)
                ):
                    refused["refused_predictions"] += 1
                    continue
                margins_a, margins_b = (_prob_margin(t) for t in transformed)
                cutoff = torch.quantile(margins_a, 1.0 - keep_fraction).item()
                if not cutoff >= min_cutoff:
                    refused["refused_underflow"] += 1
                    continue
                objective = (margins_b >= min(cutoff, 1.0 - 1e-9)).double().mean().item()
                if best is None or objective < best["objective"]:
                    best = {
                        "s": float(s),
                        "c": float(c),
                        "p": float(p),
                        "alpha": 1.0 / (1.0 + cutoff),
                        "objective": objective,
                        "cutoff": cutoff,
                    }
    total = len(s_grid) * len(c_grid) * len(p_grid)
    if best is None:
        raise ValueError(
            f"MixedNUTS search: all {total} grid points were refused ({refused['refused_predictions']} change the "
            f"robust model's predictions on the calibration sets, {refused['refused_underflow']} have a cutoff below "
            f"{min_cutoff:g}); use larger c (keeps the top class on GELU's increasing branch) or larger s"
        )
    return best | {"grid_points": float(total), **{key: float(v) for key, v in refused.items()}}
