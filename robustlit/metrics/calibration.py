"""Calibration metrics on predicted probabilities: ECE, reliability bins and diagram, Brier, NLL.

docs/calibration.md: ECE = Σ_b (|S_b| / n) · |acc(S_b) − conf(S_b)| over B equal-width bins of the top-label
confidence max_k p_k on [0, 1] (B = 15 by convention; Guo et al. 2017). All functions take
probabilities (N, K) (softmax of the logits, or the mixture probabilities of a mixed classifier) and
integer labels (N,).

Binning convention: bin b is [b/B, (b+1)/B), as in torchmetrics, except that the last bin is closed,
[(B−1)/B, 1]. torchmetrics' ``multiclass_calibration_error`` instead puts confidences exactly equal to
1.0 (common with saturated float32 softmax) into an extra bin of their own; the two ECEs agree exactly
whenever no confidence equals 1.0. We keep exactly B bins so that ECE, the reliability diagram and
``reliability_bins`` describe the same partition (and match Guo et al.'s reference, whose last bin
contains 1.0).
"""

from __future__ import annotations

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor


def _check(probs: Tensor, y: Tensor) -> None:
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, K) probabilities; got shape {tuple(probs.shape)}")
    if y.shape != probs.shape[:1]:
        raise ValueError(f"labels must have shape ({probs.shape[0]},); got {tuple(y.shape)}")
    if probs.numel() and (probs.min() < 0 or probs.max() > 1):
        raise ValueError("probs must be probabilities in [0, 1] (apply softmax to logits first)")


def reliability_bins(probs: Tensor, y: Tensor, n_bins: int = 15) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin mean confidence, accuracy and count of the top-label prediction, each of shape (n_bins,).

    Bins are equal-width on [0, 1] (see the module docstring for the edge convention). Empty bins have
    confidence and accuracy 0 and count 0.
    """
    _check(probs, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    conf, pred = probs.detach().max(dim=1)
    conf = conf.float()
    correct = (pred == y).float()
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype, device=conf.device)
    index = (torch.bucketize(conf, boundaries, right=True) - 1).clamp(0, n_bins - 1)
    counts = torch.zeros(n_bins, dtype=conf.dtype, device=conf.device).index_add_(0, index, torch.ones_like(conf))
    denom = counts.clamp_min(1.0)
    bin_conf = torch.zeros_like(counts).index_add_(0, index, conf) / denom
    bin_acc = torch.zeros_like(counts).index_add_(0, index, correct) / denom
    return bin_conf, bin_acc, counts


def expected_calibration_error(probs: Tensor, y: Tensor, n_bins: int = 15) -> Tensor:
    """Top-label ECE with ``n_bins`` equal-width bins (L1 norm), a scalar in [0, 1]."""
    bin_conf, bin_acc, counts = reliability_bins(probs, y, n_bins)
    total = counts.sum()
    if total == 0:
        raise ValueError("ECE of an empty set is undefined")
    return ((counts / total) * (bin_acc - bin_conf).abs()).sum()


def brier_score(probs: Tensor, y: Tensor) -> Tensor:
    """Multi-class Brier score mean_i Σ_k (p_ik − 1[y_i = k])², in [0, 2] (Brier 1950; summed over classes).

    The uniform predictor scores 1 − 1/K; a confident correct prediction scores 0.
    """
    _check(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(dim=1).mean()


def negative_log_likelihood(probs: Tensor, y: Tensor, min_prob: float = 1e-12) -> Tensor:
    """Mean −log p_{y_i}. Probabilities are floored at ``min_prob`` so that one zero does not make the
    average infinite (pass ``min_prob=0`` for the exact value, possibly inf)."""
    _check(probs, y)
    true_prob = probs.gather(1, y.view(-1, 1)).squeeze(1)
    return -torch.log(true_prob.clamp_min(min_prob)).mean()


def reliability_diagram_figure(bin_conf: Tensor, bin_acc: Tensor, bin_count: Tensor, title: str = "") -> Figure:
    """Reliability diagram of the output of :func:`reliability_bins` as a matplotlib ``Figure``.

    Top: accuracy per confidence bin (bars), the gap to the bin's mean confidence (hatched) and the
    diagonal of perfect calibration, with the ECE in the legend; bottom: share of examples per bin. The
    figure is attached to its own Agg canvas; pyplot is never imported, so neither the global backend nor
    pyplot's list of open figures is touched (nothing to close).
    """
    bin_conf = bin_conf.detach().cpu().double()
    bin_acc = bin_acc.detach().cpu().double()
    bin_count = bin_count.detach().cpu().double()
    n_bins = bin_conf.numel()
    width = 1.0 / n_bins
    left = torch.arange(n_bins, dtype=torch.float64) * width
    occupied = bin_count > 0
    share = bin_count / bin_count.sum().clamp_min(1.0)
    ece = float((share * (bin_acc - bin_conf).abs()).sum())

    fig = Figure(figsize=(4.5, 5.5))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lefts = left[occupied].tolist()
    accs = bin_acc[occupied].tolist()
    confs = bin_conf[occupied].tolist()
    top.bar(lefts, accs, width=width, align="edge", color="tab:blue", edgecolor="black", label="accuracy")
    gaps = [c - a for c, a in zip(confs, accs, strict=True)]
    top.bar(
        lefts,
        gaps,
        bottom=accs,
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        hatch="//",
        edgecolor="tab:red",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left", title=f"ECE = {ece:.4f}", fontsize="small")
    bottom.bar(left.tolist(), share.tolist(), width=width, align="edge", color="gray", edgecolor="black")
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("share")
    fig.tight_layout()
    return fig
