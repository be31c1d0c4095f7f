"""Temperature scaling: the fitted T undoes a known over-confidence, lowers NLL and ECE, keeps predictions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlit.metrics.calibration import expected_calibration_error
from robustlit.models.temperature_scaling import TemperatureScaled, fit_temperature


def calibrated_logits(n: int = 4000, k: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z): a perfectly calibrated predictor."""
    g = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, k, generator=g)
    y = torch.multinomial(z.softmax(dim=1), 1, generator=g).squeeze(1)
    return z, y


def test_recovers_the_temperature_of_sharpened_logits() -> None:
    z, y = calibrated_logits()
    for scale in (0.5, 1.0, 3.0):  # logits times 3: over-confident, undone by T = 3; times 0.5: under-confident
        assert fit_temperature(scale * z, y) == pytest.approx(scale, rel=0.1)


def test_lowers_nll_and_ece_and_keeps_the_predictions() -> None:
    z, y = calibrated_logits(seed=1)
    over = 4.0 * z
    t = fit_temperature(over, y)
    model = TemperatureScaled(torch.nn.Identity(), t)
    scaled = model(over)
    assert torch.equal(scaled.argmax(dim=1), over.argmax(dim=1))
    assert F.cross_entropy(scaled, y) < F.cross_entropy(over, y) - 0.1
    ece_before = expected_calibration_error(over.softmax(dim=1), y)
    ece_after = expected_calibration_error(scaled.softmax(dim=1), y)
    assert ece_after < 0.5 * ece_before


def test_refuses_bad_input() -> None:
    z, y = calibrated_logits(n=10)
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(z.masked_fill(z > 1, float("nan")), y)
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(z[:, 0], y)
    with pytest.raises(ValueError, match="temperature"):
        TemperatureScaled(torch.nn.Identity(), 0.0)
