"""Per-example label smoothing and the AR-AdaLS per-bin schedule (Qin et al., NeurIPS 2021; docs/calibration.md).

Examples are binned by adversarial robustness (see :mod:`robustlit.losses.robustness_score`); bin r has
its own smoothing strength ε_r, the target of an example in bin r is ỹ = (1 − ε_r) onehot(y) + ε_r / K,
and after each epoch ε_r ← clip(ε_r + α · (conf_r − acc_r), 0, 1) on held-out statistics, so
over-confident bins get more smoothing and under-confident bins less.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def smoothed_targets(y: Tensor, num_classes: int, eps_per_example: Tensor | float) -> Tensor:
    """ỹ = (1 − ε_i) onehot(y_i) + ε_i / K, shape (N, K); ε may be a float or a (N,) tensor in [0, 1]."""
    onehot = F.one_hot(y, num_classes).to(torch.get_default_dtype())
    eps = torch.as_tensor(eps_per_example, dtype=onehot.dtype, device=onehot.device)
    if eps.dim() == 0:
        eps = eps.expand(y.shape[0])
    if eps.shape != y.shape:
        raise ValueError(f"eps_per_example must be a float or have shape {tuple(y.shape)}; got {tuple(eps.shape)}")
    if (eps < 0).any() or (eps > 1).any():
        raise ValueError("label-smoothing strengths must lie in [0, 1]")
    eps = eps.unsqueeze(1)
    return (1.0 - eps) * onehot + eps / num_classes


def smoothed_cross_entropy(logits: Tensor, y: Tensor, eps_per_example: Tensor | float) -> Tensor:
    """Per-example CE(f(x_i), ỹ_i) = −Σ_k ỹ_ik log softmax(f(x_i))_k, shape (N,); ε = 0 gives plain CE."""
    targets = smoothed_targets(y, logits.shape[1], eps_per_example).to(logits.dtype)
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1)


def bin_confidence_accuracy(
    probs: Tensor, y: Tensor, bin_index: Tensor, num_bins: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin mean top-label confidence, accuracy and count (conf_r, acc_r, n_r) for the ε_r update.

    ``bin_index`` (N,) assigns examples to robustness bins (:meth:`AdaptiveSmoothingSchedule.assign`).
    Empty bins get conf = acc = 0 and count 0.
    """
    conf, pred = probs.max(dim=1)
    correct = (pred == y).to(conf.dtype)
    counts = torch.zeros(num_bins, dtype=conf.dtype, device=conf.device).index_add_(0, bin_index, torch.ones_like(conf))
    conf_sum = torch.zeros_like(counts).index_add_(0, bin_index, conf)
    acc_sum = torch.zeros_like(counts).index_add_(0, bin_index, correct)
    denom = counts.clamp_min(1.0)
    return conf_sum / denom, acc_sum / denom, counts


class AdaptiveSmoothingSchedule(nn.Module):
    """AR-AdaLS state: R robustness bins (quantile edges) and one smoothing strength ε_r ∈ [0, 1] per bin.

    ``eps`` (R,), ``edges`` (R − 1,) and a ``fitted`` flag are buffers, so they are checkpointed and move
    with the module. Bin 0 holds the least robust examples (smallest scores).

    Choices: the edges are the training-score quantiles at 1/R, .., (R−1)/R (equal-size bins, as the paper
    describes); a score equal to an edge goes to the lower bin. With many tied scores (e.g. examples that
    never flipped all get the same capped score) bins can be unequal or empty — empty bins are skipped by
    :meth:`update`. ε_r is clipped to the closed interval [0, 1] (ε = 1 is the uniform target).
    """

    eps: Tensor
    edges: Tensor
    fitted: Tensor

    def __init__(self, num_bins: int = 10, init_eps: float = 0.0) -> None:
        super().__init__()
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1; got {num_bins}")
        if not 0.0 <= init_eps <= 1.0:
            raise ValueError(f"init_eps must lie in [0, 1]; got {init_eps}")
        self.num_bins = num_bins
        self.register_buffer("eps", torch.full((num_bins,), float(init_eps)))
        self.register_buffer("edges", torch.zeros(num_bins - 1))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_bins(self, scores: Tensor) -> Tensor:
        """Set the bin edges to the quantiles of (training) robustness scores; returns the edges."""
        scores = scores.detach().flatten().to(self.edges)
        if scores.numel() == 0:
            raise ValueError("fit_bins needs at least one score")
        if self.num_bins > 1:
            levels = torch.arange(1, self.num_bins, dtype=scores.dtype, device=scores.device) / self.num_bins
            self.edges.copy_(torch.quantile(scores, levels))
        self.fitted.fill_(True)
        return self.edges.clone()

    def assign(self, scores: Tensor) -> Tensor:
        """Bin index in {0, .., R−1} for each score (same edges for training and validation examples)."""
        if not bool(self.fitted):
            raise RuntimeError("call fit_bins(training_scores) before assign()")
        return torch.bucketize(scores.detach().to(self.edges), self.edges, right=False)

    def eps_for(self, scores: Tensor) -> Tensor:
        """Per-example smoothing strength ε_{bin(x)} for the given robustness scores."""
        return self.eps[self.assign(scores)]

    @torch.no_grad()
    def update(self, conf_per_bin: Tensor, acc_per_bin: Tensor, counts: Tensor, step: float) -> Tensor:
        """ε_r ← clip(ε_r + step · (conf_r − acc_r), 0, 1) for bins with counts > 0; returns the new ε."""
        for name, value in (("conf_per_bin", conf_per_bin), ("acc_per_bin", acc_per_bin), ("counts", counts)):
            if value.shape != self.eps.shape:
                raise ValueError(f"{name} must have shape {tuple(self.eps.shape)}; got {tuple(value.shape)}")
        gap = (conf_per_bin - acc_per_bin).to(self.eps)
        proposed = (self.eps + step * gap).clamp(0.0, 1.0)
        self.eps.copy_(torch.where(counts.to(self.eps.device) > 0, proposed, self.eps))
        return self.eps.clone()

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}"
