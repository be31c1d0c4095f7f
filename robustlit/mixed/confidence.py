"""The confidence report of a robust model: will mixing it with a standard model pay off, and at which alpha?

Bai, Anderson, Kim, Sojoudi (2023, arXiv 2301.12554) and Bai, Zhou, Patel, Sojoudi (2024, MixedNUTS, arXiv
2402.02263) name the robust base's confidence difference between its correct and its incorrect examples as
what makes a mixed classifier work. This file measures it, before any mixture is trained
(docs/mixed_classifier.md, "The confidence report"):

- the *worst-case margin* of each example, ``m(x) = min over x' of p_y(x') - max_{k != y} p_k(x')`` with
  ``p = softmax(h(x'))``, the minimum taken over the clean input and every iterate of APGD-CE and APGD-T
  (robustlit's APGD, :func:`robustlit.mixed.apgd.mixture_apgd` with ``keep="min_margin"``); the example is
  robust under those attacks iff ``m > 0``;
- the margins (top-1 minus top-2 probability) of h's clean mistakes;
- the separation AUC: the probability that a robust example's worst-case margin exceeds a clean mistake's
  margin (Mann-Whitney, ``sklearn.metrics.roc_auc_score``);
- the accuracy-robustness curve over a constant alpha *predicted* for a fully fooled standard model g: with
  ``P = (1 - alpha) q + alpha p`` (q = g's probabilities) and g putting all its mass on h's runner-up class j,
  ``P_y - P_j = alpha (p_y - p_j) - (1 - alpha)`` and every other class is behind j, so the mixture is
  right iff ``m > (1 - alpha) / alpha``; for any other q, ``P_y - max_k P_k >= alpha m - (1 - alpha)``, so
  ``m > (1 - alpha) / alpha`` also suffices whatever g does. The predicted robust accuracy at alpha is the
  share of examples whose worst-case margin reaches ``(1 - alpha) / alpha``.

Pure torch (and scikit-learn for the AUC), no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from robustlit.attacks.threat_model import Norm
from robustlit.mixed.apgd import mixture_apgd, probability_margin
from robustlit.mixed.mixing_rule import mix_log_probs

__all__ = [
    "DEFAULT_ALPHAS",
    "ClassifierAsMixture",
    "confidence_report",
    "predicted_curve",
    "recommend_alpha",
    "separation_auc",
    "summarise_confidence",
    "survives_fooled_standard",
    "top2_margin",
    "worst_case_margins",
]

#: the alphas of the predicted curve: below 1/2 the threshold (1 - alpha) / alpha exceeds 1, no margin reaches it
DEFAULT_ALPHAS = tuple(round(0.5 + 0.005 * i, 3) for i in range(101))


class ClassifierAsMixture(nn.Module):
    """A plain classifier seen through the mixture interface, ``forward_with_alpha(x) -> (log_softmax(model(x)),
    1, 0)``, so that robustlit's APGD (:func:`~robustlit.mixed.apgd.mixture_apgd`) can attack it alone."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward_with_alpha(self, x: Tensor, surrogate: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        log_probs = F.log_softmax(self.model(x).float(), dim=1)
        ones = torch.ones(x.shape[0], device=log_probs.device)
        return log_probs, ones, torch.zeros_like(ones)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_alpha(x)[0]


def top2_margin(logits: Tensor) -> Tensor:
    """Top-1 minus top-2 softmax probability (N,): the confidence of the prediction, right or wrong."""
    top = logits.float().softmax(dim=1).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def worst_case_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 100,
    norm: Norm = "Linf",
    targets: int = 9,
    restarts: int = 1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[Tensor, Tensor]:
    """``(margins (N,), points)``: per example the smallest ``p_y - max_{k != y} p_k`` of ``model`` over the clean
    input and every iterate of APGD-CE and of APGD-T against each of the ``targets`` top classes (Croce and Hein
    2020; AutoAttack's 9 targets by default), and the point where it was reached. ``margins > 0`` marks the
    examples none of these attacks broke. The caller seeds the random starts."""
    wrapped = ClassifierAsMixture(model)
    with torch.no_grad():
        log_probs = wrapped(x)
    best, points = probability_margin(log_probs, y), x.detach().clone()
    runs = [(False, 1)] + [(True, rank) for rank in range(1, min(targets, log_probs.shape[1] - 1) + 1)]
    for targeted, rank in runs:
        x_adv = mixture_apgd(
            wrapped, x, y, eps, steps, norm, targeted=targeted, target_rank=rank, bounds=bounds,
            restarts=restarts, keep="min_margin",
        )  # fmt: skip
        with torch.no_grad():
            margin = probability_margin(wrapped(x_adv), y)
        lower = margin < best
        best = torch.where(lower, margin, best)
        points[lower] = x_adv[lower]
    return best, points


def survives_fooled_standard(margins: Tensor, alpha: float) -> Tensor:
    """Whether each example keeps its label in the mixture with constant ``alpha`` when the standard model puts all
    its probability on h's runner-up class: ``margin > 0`` and ``margin >= (1 - alpha) / alpha`` (module docstring)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
    if alpha == 0.0:
        return torch.zeros_like(margins, dtype=torch.bool)
    return (margins > 0) & (margins >= (1.0 - alpha) / alpha)


def separation_auc(robust_margins: Tensor, mistake_margins: Tensor) -> float | None:
    """P(a robust example's worst-case margin > a clean mistake's margin), ties counted half; None if a group is
    empty. 1: confidence separates them perfectly; 0.5: not at all."""
    if len(robust_margins) == 0 or len(mistake_margins) == 0:
        return None
    scores = torch.cat([robust_margins, mistake_margins]).double().numpy()
    labels = [1] * len(robust_margins) + [0] * len(mistake_margins)
    return float(roc_auc_score(labels, scores))


def predicted_curve(
    worst_margins: Tensor,
    clean_logits: Tensor,
    y: Tensor,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    standard_logits: Tensor | None = None,
) -> list[dict[str, float]]:
    """Clean and robust accuracy of the constant-alpha mixture for each alpha.

    Robust accuracy is predicted from the worst-case margins for a fully fooled standard model
    (:func:`survives_fooled_standard`). Clean accuracy is exact when the standard model's clean logits are given
    (``argmax((1 - alpha) softmax(z_g) + alpha softmax(z_h))``); without them it is predicted for a standard model
    that is always right with probability 1: the mixture is right iff h's clean margin ``p_y - max_{k != y} p_k``
    exceeds ``-(1 - alpha) / alpha``.
    """
    clean_margin = probability_margin(F.log_softmax(clean_logits.float(), dim=1), y)
    curve = []
    for alpha in alphas:
        alpha = float(alpha)
        if standard_logits is not None:
            clean = mix_log_probs(standard_logits.float(), clean_logits.float(), alpha).argmax(dim=1) == y
        elif alpha == 0.0:
            clean = torch.ones_like(y, dtype=torch.bool)
        else:
            clean = clean_margin > -(1.0 - alpha) / alpha
        curve.append(
            {
                "alpha": alpha,
                "threshold": (1.0 - alpha) / alpha if alpha > 0 else float("inf"),
                "clean_acc": clean.float().mean().item(),
                "robust_acc": survives_fooled_standard(worst_margins, alpha).float().mean().item(),
            }
        )
    return curve


def recommend_alpha(curve: list[dict[str, float]], robustness_budget: float = 0.02) -> dict[str, float]:
    """The curve point with the highest clean accuracy among those whose predicted robust accuracy is at most
    ``robustness_budget`` below h's own (the curve at alpha = 1, or its largest alpha); ties: the larger alpha."""
    if not curve:
        raise ValueError("recommend_alpha needs a non-empty curve")
    top = max(curve, key=lambda p: p["alpha"])
    allowed = [p for p in curve if p["robust_acc"] >= top["robust_acc"] - robustness_budget - 1e-12]
    best = max(allowed, key=lambda p: (round(p["clean_acc"], 12), p["alpha"]))
    return dict(best) | {"robustness_cost": top["robust_acc"] - best["robust_acc"]}


def _quartiles(values: Tensor) -> list[float] | None:
    if len(values) == 0:
        return None
    return torch.quantile(values.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()


def summarise_confidence(
    y: Tensor,
    clean_logits: Tensor,
    worst_margins: Tensor,
    standard_logits: Tensor | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    robustness_budget: float = 0.02,
) -> dict:
    """The report from per-example columns: h's clean logits, its worst-case margins, optionally g's clean logits.

    Returns a JSON-ready dict: ``clean_acc`` and ``robust_acc`` of h (robust: ``margin > 0``), the two margin
    groups (``robust_margins``: worst-case margins of the robust examples; ``mistake_margins``: top-1 minus top-2
    margins of the clean mistakes) with counts and quartiles, ``auc`` (:func:`separation_auc`), the predicted
    ``curve`` and the ``recommended`` point (:func:`recommend_alpha`) with the share of the clean gap between g
    and h it recovers (when g is given).
    """
    y, clean_logits, worst_margins = y.cpu(), clean_logits.cpu().float(), worst_margins.cpu().float()
    correct = clean_logits.argmax(dim=1) == y
    robust = worst_margins > 0
    robust_margins, mistake_margins = worst_margins[robust], top2_margin(clean_logits[~correct])
    standard = None if standard_logits is None else standard_logits.cpu().float()
    curve = predicted_curve(worst_margins, clean_logits, y, alphas, standard)
    recommended = recommend_alpha(curve, robustness_budget)
    report = {
        "num_examples": len(y),
        "clean_acc": correct.float().mean().item(),
        "robust_acc": robust.float().mean().item(),
        "robust_margins": {
            "count": len(robust_margins),
            "quartiles": _quartiles(robust_margins),
            "values": sorted(robust_margins.tolist()),
        },
        "mistake_margins": {
            "count": len(mistake_margins),
            "quartiles": _quartiles(mistake_margins),
            "values": sorted(mistake_margins.tolist()),
        },
        "auc": separation_auc(robust_margins, mistake_margins),
        "curve_clean": "standard model" if standard is not None else "ideal standard model (always right)",
        "curve": curve,
        "robustness_budget": robustness_budget,
        "recommended": recommended,
        "standard_clean_acc": None,
    }
    if standard is not None:
        g_clean = (standard.argmax(dim=1) == y).float().mean().item()
        gap = g_clean - report["clean_acc"]
        report["standard_clean_acc"] = g_clean
        report["clean_gap"] = gap
        recommended["gap_recovered"] = (recommended["clean_acc"] - report["clean_acc"]) / gap if gap > 0 else None
    return report


def confidence_report(
    robust: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 100,
    norm: Norm = "Linf",
    targets: int = 9,
    restarts: int = 1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    standard: nn.Module | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    robustness_budget: float = 0.02,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """The confidence report of the robust model ``robust`` on ``(x, y)`` (see :func:`summarise_confidence`), with
    the standard model ``standard`` for the exact clean curve and the clean gap. Batches of ``batch_size``; the
    attacks' random starts are seeded by ``seed`` and the batch index. The same report comes from the CLI through
    :class:`robustlit.mixed.confidence_evaluation.ConfidenceReport`."""
    logits, margins, standard_logits = [], [], []
    for index, (xb, yb) in enumerate(zip(x.split(batch_size), y.split(batch_size), strict=True)):
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed + 100_003 * index)
            worst, _ = worst_case_margins(robust, xb, yb, eps, steps, norm, targets, restarts, bounds)
        with torch.no_grad():
            logits.append(robust(xb).float())
            if standard is not None:
                standard_logits.append(standard(xb).float())
        margins.append(worst)
    report = summarise_confidence(
        y, torch.cat(logits), torch.cat(margins), torch.cat(standard_logits) if standard is not None else None,
        alphas, robustness_budget,
    )  # fmt: skip
    return report | {"attack": {"eps": eps, "norm": norm, "steps": steps, "targets": targets, "restarts": restarts}}
