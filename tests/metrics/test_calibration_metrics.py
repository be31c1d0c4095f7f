"""ECE, reliability bins/diagram, Brier and NLL (docs/calibration.md)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_calibration_error

from robustlit.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    reliability_diagram_figure,
)


def calibrated_predictor(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-label confidence c ~ U(1/k, 1); the prediction is correct with probability exactly c."""
    generator = torch.Generator().manual_seed(seed)
    conf = 1 / k + (1 - 1 / k) * torch.rand(n, generator=generator)
    pred = torch.randint(0, k, (n,), generator=generator)
    probs = ((1 - conf) / (k - 1)).unsqueeze(1).repeat(1, k)
    probs.scatter_(1, pred.view(-1, 1), conf.view(-1, 1))
    correct = torch.rand(n, generator=generator) < conf
    wrong = (pred + torch.randint(1, k, (n,), generator=generator)) % k
    return probs, torch.where(correct, pred, wrong)


def test_ece_of_calibrated_predictor_tends_to_zero() -> None:
    small = expected_calibration_error(*calibrated_predictor(2_000, 10, seed=0))
    large = expected_calibration_error(*calibrated_predictor(200_000, 10, seed=0))
    assert large < 0.01
    assert large < small


def test_ece_of_overconfident_predictor() -> None:
    probs, y = calibrated_predictor(50_000, 10, seed=1)
    sharpened = torch.softmax(torch.log(probs) * 4, dim=1)  # same predictions, higher confidence
    ece = expected_calibration_error(sharpened, y)
    assert ece > 0.1
    bin_conf, bin_acc, counts = reliability_bins(sharpened, y)
    occupied = counts > 100
    assert (bin_conf[occupied] >= bin_acc[occupied] - 0.02).all()


def test_ece_range_extremes() -> None:
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([1, 0])) == pytest.approx(1.0)
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.0)
    probs, y = calibrated_predictor(1_000, 5, seed=2)
    ece = expected_calibration_error(probs, y)
    assert 0.0 <= ece <= 1.0


@pytest.mark.parametrize("n_bins", [1, 10, 15, 20])
def test_ece_matches_torchmetrics(n_bins: int) -> None:
    torch.manual_seed(n_bins)
    logits = torch.randn(5_000, 7) * 2
    probs = torch.softmax(logits, dim=1)
    y = torch.randint(0, 7, (5_000,))
    assert probs.max() < 1.0  # torchmetrics gives conf == 1.0 a bin of its own (module docstring)
    ours = expected_calibration_error(probs, y, n_bins=n_bins)
    theirs = multiclass_calibration_error(probs, y, num_classes=7, n_bins=n_bins, norm="l1")
    assert ours == pytest.approx(theirs.item(), abs=1e-6)


def test_confidence_one_goes_to_the_last_bin() -> None:
    probs = torch.tensor([[1.0, 0.0], [0.95, 0.05], [0.5, 0.5]])
    y = torch.tensor([0, 1, 0])
    bin_conf, bin_acc, counts = reliability_bins(probs, y, n_bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bin_conf[9] == pytest.approx(0.975) and bin_acc[9] == pytest.approx(0.5)
    assert counts.sum() == 3


def test_brier_and_nll_known_values() -> None:
    k = 4
    uniform = torch.full((3, k), 1 / k)
    y = torch.tensor([0, 3, 1])
    assert brier_score(uniform, y) == pytest.approx(1 - 1 / k)
    assert negative_log_likelihood(uniform, y) == pytest.approx(math.log(k))
    onehot = torch.nn.functional.one_hot(y, k).float()
    assert brier_score(onehot, y) == pytest.approx(0.0)
    assert negative_log_likelihood(onehot, y) == pytest.approx(0.0, abs=1e-6)
    wrong = torch.nn.functional.one_hot((y + 1) % k, k).float()
    assert brier_score(wrong, y) == pytest.approx(2.0)
    assert negative_log_likelihood(wrong, y) == pytest.approx(-math.log(1e-12), rel=1e-4)
    assert math.isinf(negative_log_likelihood(wrong, y, min_prob=0.0))
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    assert brier_score(probs, torch.tensor([0])) == pytest.approx(0.09 + 0.04 + 0.01)
    assert negative_log_likelihood(probs, torch.tensor([1])) == pytest.approx(-math.log(0.2))


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        expected_calibration_error(torch.randn(4, 3) * 5, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        brier_score(torch.full((4, 3), 1 / 3), torch.zeros(5, dtype=torch.long))


def test_reliability_diagram_is_a_standalone_figure() -> None:
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    probs, y = calibrated_predictor(2_000, 10, seed=3)
    fig = reliability_diagram_figure(*reliability_bins(probs, y, n_bins=15), title="calibrated")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "calibrated"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == open_before
