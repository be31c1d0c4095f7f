"""Per-example label smoothing and the AR-AdaLS schedule (Qin et al. 2021; docs/calibration.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlit.losses.label_smoothing import (
    AdaptiveSmoothingSchedule,
    bin_confidence_accuracy,
    equal_size_bins,
    smoothed_cross_entropy,
    smoothed_targets,
)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(12, 5), torch.randint(0, 5, (12,))


def test_zero_smoothing_is_cross_entropy(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, y = batch
    expected = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(smoothed_cross_entropy(logits, y, 0.0), expected, atol=1e-6)
    assert torch.allclose(smoothed_cross_entropy(logits, y, torch.zeros(12)), expected, atol=1e-6)


def test_smoothing_matches_torch_label_smoothing(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, y = batch
    expected = F.cross_entropy(logits, y, reduction="none", label_smoothing=0.2)
    assert torch.allclose(smoothed_cross_entropy(logits, y, 0.2), expected, atol=1e-6)


def test_per_example_targets() -> None:
    y = torch.tensor([0, 2, 1])
    smoothing = torch.tensor([0.0, 0.5, 1.0])
    targets = smoothed_targets(y, 4, smoothing)
    assert torch.allclose(targets.sum(dim=1), torch.ones(3))
    assert torch.allclose(targets[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(targets[1], torch.tensor([0.125, 0.125, 0.625, 0.125]))
    assert torch.allclose(targets[2], torch.full((4,), 0.25))
    with pytest.raises(ValueError):
        smoothed_targets(y, 4, torch.tensor([0.0, 0.5, 1.5]))


def test_bins_are_quantiles_and_shared_by_new_scores() -> None:
    schedule = AdaptiveSmoothingSchedule(num_bins=4)
    with pytest.raises(RuntimeError):
        schedule.assign(torch.zeros(3))
    scores = torch.randperm(100).float()
    schedule.fit_bins(scores)
    counts = torch.bincount(schedule.assign(scores), minlength=4)
    assert counts.tolist() == [25, 25, 25, 25]
    assert schedule.assign(torch.tensor([-5.0, 1000.0])).tolist() == [0, 3]


def test_equal_size_bins_hold_n_over_r_examples_even_when_scores_tie() -> None:
    """Qin et al.'s equal-size bins: ⌊N/R⌋ or ⌈N/R⌉ examples each although 90% of the scores are tied
    (quantile edges would put all of them in bin 0); ties are broken at random, reproducibly by seed."""
    scores = torch.cat([torch.full((90,), 0.01), torch.linspace(0.1, 0.3, 13)])  # N = 103, R = 5
    bins = equal_size_bins(scores, 5, torch.Generator().manual_seed(0))
    counts = torch.bincount(bins, minlength=5)
    assert counts.sum() == 103 and counts.min() >= 103 // 5 and counts.max() <= 103 // 5 + 1
    assert (bins[90:] == 4).all()  # the 13 largest scores are in the top bin
    again = equal_size_bins(scores, 5, torch.Generator().manual_seed(0))
    other = equal_size_bins(scores, 5, torch.Generator().manual_seed(1))
    assert torch.equal(bins, again) and not torch.equal(bins, other)
    # the quantile edges this replaces collapse: every tied score lands in bin 0
    quantile_bins = torch.bucketize(scores, torch.quantile(scores, torch.tensor([0.2, 0.4, 0.6, 0.8])))
    assert torch.bincount(quantile_bins, minlength=5)[0] >= 90
    schedule = AdaptiveSmoothingSchedule(num_bins=5)
    assert torch.equal(schedule.fit_bins(scores, torch.Generator().manual_seed(0)), bins)
    assert schedule.assign(torch.tensor([0.01, 0.3])).tolist() == [0, 4]


def test_update_direction_clipping_and_empty_bins() -> None:
    schedule = AdaptiveSmoothingSchedule(num_bins=4, init_smoothing=0.1)
    conf = torch.tensor([0.9, 0.6, 0.99, 0.5])
    acc = torch.tensor([0.6, 0.9, 0.0, 0.9])
    counts = torch.tensor([10, 10, 10, 0])
    smoothing = schedule.update(conf, acc, counts, step_size=0.5)
    assert smoothing[0] > 0.1  # over-confident: more smoothing
    assert smoothing[1] < 0.1  # under-confident: less smoothing
    assert smoothing[3] == pytest.approx(0.1)  # empty bin untouched
    for _ in range(10):
        smoothing = schedule.update(conf, acc, counts, step_size=0.5)
    assert smoothing[2] == 1.0 and smoothing[1] == 0.0
    assert (smoothing >= 0).all() and (smoothing <= 1).all()


def test_bin_statistics_and_state_dict() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    y = torch.tensor([0, 1, 1, 1])
    bins = torch.tensor([0, 0, 1, 1])
    conf, acc, counts = bin_confidence_accuracy(probs, y, bins, num_bins=3)
    assert torch.allclose(conf, torch.tensor([0.75, 0.75, 0.0]))
    assert torch.allclose(acc, torch.tensor([0.5, 1.0, 0.0]))
    assert counts.tolist() == [2.0, 2.0, 0.0]

    schedule = AdaptiveSmoothingSchedule(num_bins=3)
    schedule.fit_bins(torch.arange(30.0))
    schedule.update(conf, acc, counts, step_size=1.0)
    restored = AdaptiveSmoothingSchedule(num_bins=3)
    restored.load_state_dict(schedule.state_dict())
    assert torch.equal(restored.smoothing, schedule.smoothing) and torch.equal(restored.edges, schedule.edges)
    assert torch.equal(restored.smoothing_for(torch.tensor([0.0, 29.0])), schedule.smoothing[[0, 2]])
    old_names = {("eps" if k == "smoothing" else k): v for k, v in schedule.state_dict().items()}
    renamed = AdaptiveSmoothingSchedule(num_bins=3)
    renamed.load_state_dict(old_names)  # checkpoints from before the rename still load
    assert torch.equal(renamed.smoothing, schedule.smoothing)
