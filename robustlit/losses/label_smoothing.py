"""Per-example label smoothing and the AR-AdaLS per-bin schedule (Qin et al., NeurIPS 2021).

Examples are binned by adversarial robustness (see :mod:`robustlit.losses.robustness_score`); bin r has
its own smoothing strength s_r, the target of an example in bin r is ỹ = (1 − s_r) onehot(y) + s_r / K,
and after each epoch s_r ← clip(s_r + η · (conf_r − acc_r), 0, 1) on held-out statistics (step size η),
so over-confident bins get more smoothing and under-confident bins less.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def smoothed_targets(y: Tensor, num_classes: int, smoothing: Tensor | float) -> Tensor:
    """ỹ = (1 − s_i) onehot(y_i) + s_i / K, shape (N, K); ``smoothing`` s is a float or a (N,) tensor in [0, 1]."""
    onehot = F.one_hot(y, num_classes).to(torch.get_default_dtype())
    strength = torch.as_tensor(smoothing, dtype=onehot.dtype, device=onehot.device)
    if strength.dim() == 0:
        strength = strength.expand(y.shape[0])
    if strength.shape != y.shape:
        raise ValueError(f"smoothing must be a float or have shape {tuple(y.shape)}; got {tuple(strength.shape)}")
    if (strength < 0).any() or (strength > 1).any():
        raise ValueError("label-smoothing strengths must lie in [0, 1]")
    strength = strength.unsqueeze(1)
    return (1.0 - strength) * onehot + strength / num_classes


def smoothed_cross_entropy(logits: Tensor, y: Tensor, smoothing: Tensor | float) -> Tensor:
    """Per-example CE(f(x_i), ỹ_i) = −Σ_k ỹ_ik log softmax(f(x_i))_k, shape (N,); s = 0 gives plain CE."""
    targets = smoothed_targets(y, logits.shape[1], smoothing).to(logits.dtype)
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1)


def equal_size_bins(scores: Tensor, num_bins: int, generator: torch.Generator | None = None) -> Tensor:
    """Bin index in {0, .., R−1} of each score: R bins of equal size by rank (Qin et al. 2021, sec. 4).

    The examples are sorted by score (bin 0 = the smallest scores, the least robust) and the example of rank
    k goes to bin ⌊k R / N⌋, so every bin holds ⌊N/R⌋ or ⌈N/R⌉ examples whatever the ties. Tied scores are
    ordered at random: a random permutation drawn from ``generator`` (seed it for reproducible bins), then
    a stable sort. Returns a long tensor on the device of ``scores``.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins}")
    scores = scores.detach().flatten()
    n = scores.numel()
    permutation = torch.randperm(n, generator=generator).to(scores.device)
    order = permutation[torch.sort(scores[permutation], stable=True).indices]
    rank = torch.empty(n, dtype=torch.long, device=scores.device)
    rank[order] = torch.arange(n, device=scores.device)
    return torch.div(rank * num_bins, max(n, 1), rounding_mode="floor")


def bin_confidence_accuracy(
    probs: Tensor, y: Tensor, bin_index: Tensor, num_bins: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin mean top-label confidence, accuracy and count (conf_r, acc_r, n_r) for the s_r update.

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
    """AR-AdaLS state: R robustness bins of equal size and one smoothing strength s_r ∈ [0, 1] per bin.

    ``smoothing`` (R,), ``edges`` (R − 1,) and a ``fitted`` flag are buffers, so they are checkpointed and move
    with the module. Bin 0 holds the least robust examples (smallest scores).

    :meth:`fit_bins` bins a set of scores by rank (:func:`equal_size_bins`: ⌊N/R⌋ or ⌈N/R⌉ examples per bin,
    ties broken at random), the paper's equal-size bins; it records as edge r the largest score of bin r, so
    that :meth:`assign` can place an example scored later (a score equal to an edge goes to the lower bin).
    Empty bins (fewer examples than bins) are skipped by :meth:`update`. s_r is clipped to the closed interval
    [0, 1] (s = 1 is the uniform target).
    """

    smoothing: Tensor
    edges: Tensor
    fitted: Tensor

    def __init__(self, num_bins: int = 10, init_smoothing: float = 0.0) -> None:
        super().__init__()
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1; got {num_bins}")
        if not 0.0 <= init_smoothing <= 1.0:
            raise ValueError(f"init_smoothing must lie in [0, 1]; got {init_smoothing}")
        self.num_bins = num_bins
        self.register_buffer("smoothing", torch.full((num_bins,), float(init_smoothing)))
        self.register_buffer("edges", torch.zeros(num_bins - 1))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_bins(self, scores: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Bin (training) robustness scores into R equal-size bins by rank; returns each score's bin index.

        Also sets the edges (edge r = the largest score in bin r, for :meth:`assign`).
        """
        scores = scores.detach().flatten().to(self.edges)
        if scores.numel() == 0:
            raise ValueError("fit_bins needs at least one score")
        bins = equal_size_bins(scores, self.num_bins, generator)
        if self.num_bins > 1:
            top = torch.full((self.num_bins,), -torch.inf, dtype=scores.dtype, device=scores.device)
            top = top.scatter_reduce(0, bins, scores, reduce="amax")
            self.edges.copy_(torch.cummax(top[:-1], dim=0).values.clamp_min(scores.min()))
        self.fitted.fill_(True)
        return bins

    def assign(self, scores: Tensor) -> Tensor:
        """Bin index in {0, .., R−1} for each score (same edges for training and validation examples)."""
        if not bool(self.fitted):
            raise RuntimeError("call fit_bins(training_scores) before assign()")
        return torch.bucketize(scores.detach().to(self.edges), self.edges, right=False)

    def smoothing_for(self, scores: Tensor) -> Tensor:
        """Per-example smoothing strength s_{bin(x)} for the given robustness scores."""
        return self.smoothing[self.assign(scores)]

    @torch.no_grad()
    def update(self, conf_per_bin: Tensor, acc_per_bin: Tensor, counts: Tensor, step_size: float) -> Tensor:
        """s_r ← clip(s_r + step_size · (conf_r − acc_r), 0, 1) for bins with counts > 0; returns the new s."""
        for name, value in (("conf_per_bin", conf_per_bin), ("acc_per_bin", acc_per_bin), ("counts", counts)):
            if value.shape != self.smoothing.shape:
                raise ValueError(f"{name} must have shape {tuple(self.smoothing.shape)}; got {tuple(value.shape)}")
        gap = (conf_per_bin - acc_per_bin).to(self.smoothing)
        proposed = (self.smoothing + step_size * gap).clamp(0.0, 1.0)
        self.smoothing.copy_(torch.where(counts.to(self.smoothing.device) > 0, proposed, self.smoothing))
        return self.smoothing.clone()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        if prefix + "eps" in state_dict:  # checkpoints written before the buffer was renamed
            state_dict[prefix + "smoothing"] = state_dict.pop(prefix + "eps")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}"
