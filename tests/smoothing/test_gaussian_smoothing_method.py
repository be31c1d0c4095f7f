"""GaussianSmoothing: Gaussian augmentation in pixel space before Normalize (Cohen et al. 2019; docs/smoothing.md)."""

from __future__ import annotations

import pytest
import torch
from smoothing_helpers import DIGITS_MEAN, DIGITS_STD, digits, trained_linear_smoothing
from torch import Tensor, nn

from robustlit.certify import ABSTAIN, ConstantSigma, SigmaFunction
from robustlit.methods.gaussian_smoothing import GaussianSmoothing
from robustlit.models import SmallCNN


class Recorder(nn.Module):
    """Backbone that records what it receives (the *normalised* noisy input) and returns zero logits."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return self.bias.expand(x.shape[0], 10)


class RowSigma(SigmaFunction):
    """sigma(x) = 0.05 + 0.4 * mean(x): a different noise level for every example."""

    def __init__(self) -> None:
        super().__init__(semi_elasticity=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return 0.05 + 0.4 * x.flatten(1).mean(dim=1)


def _recorded_noise(sigma: float | SigmaFunction, x: Tensor) -> Tensor:
    """Noise the backbone saw, mapped back to pixel space with the model's own mean/std."""
    backbone = Recorder()
    model = GaussianSmoothing(sigma=sigma, backbone=backbone, mean=DIGITS_MEAN, std=DIGITS_STD)
    model.per_example_loss(x, torch.zeros(x.shape[0], dtype=torch.long))
    seen = backbone.seen[-1]
    return seen * DIGITS_STD[0] + DIGITS_MEAN[0] - x


def test_noise_has_sigma_std_in_pixel_space_before_normalisation_and_is_not_clipped() -> None:
    torch.manual_seed(0)
    x = torch.full((400, 1, 8, 8), 0.5)
    noise = _recorded_noise(0.25, x)
    # Noise added after Normalize would show a pixel-space std of 0.25 * 0.38 = 0.095.
    assert noise.std().item() == pytest.approx(0.25, rel=0.02)
    assert abs(noise.mean().item()) < 0.005
    noisy = x + noise
    assert noisy.min() < 0 and noisy.max() > 1  # no clipping to [0, 1] (Cohen et al.)


def test_input_dependent_noise_follows_sigma_of_each_example() -> None:
    torch.manual_seed(1)
    levels = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x = levels.view(-1, 1, 1, 1).expand(-1, 1, 64, 64).contiguous()
    noise = _recorded_noise(RowSigma(), x)
    expected = 0.05 + 0.4 * levels
    assert torch.allclose(noise.flatten(1).std(dim=1), expected, rtol=0.03)


def test_fresh_noise_every_step() -> None:
    x = torch.full((4, 1, 8, 8), 0.5)
    torch.manual_seed(2)
    first, second = _recorded_noise(0.25, x), _recorded_noise(0.25, x)
    assert not torch.allclose(first, second)


def test_training_loss_decreases_on_digits() -> None:
    torch.manual_seed(0)
    model = GaussianSmoothing(
        sigma=0.25, backbone=SmallCNN(10, 1, width=8, hidden=32), mean=DIGITS_MEAN, std=DIGITS_STD
    )
    x, y = digits().train_dataset.tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for step in range(40):
        batch = torch.arange(64 * step, 64 * (step + 1)) % len(y)
        optimizer.zero_grad()
        loss = model.training_loss(x[batch], y[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_smoothed_classifier_predicts_and_certifies_user_inputs() -> None:
    model = trained_linear_smoothing()
    smoothed = model.smoothed_classifier()
    x, y = digits().test_dataset.tensors
    gen = torch.Generator().manual_seed(0)
    predictions = smoothed.predict_batch(x[:20], n=200, alpha=0.001, batch_size=200, generator=gen)
    assert ((predictions == y[:20].numpy()) | (predictions == ABSTAIN)).mean() >= 0.8
    result = smoothed.certify(x[0], n0=50, n=500, alpha=0.001, batch_size=250, generator=gen)
    assert result.radius_method == "cohen" and result.sigma == pytest.approx(0.25)


def test_inputs_outside_unit_interval_give_a_clear_error() -> None:
    smoothed = trained_linear_smoothing(steps=1).smoothed_classifier()
    normalised = (digits().test_dataset.tensors[0][0] - 0.3) / 0.38
    with pytest.raises(ValueError, match=r"outside input_bounds.*pixel units"):
        smoothed.certify(normalised, n0=10, n=10, alpha=0.01, batch_size=10)


@pytest.mark.parametrize("bad", [0.0, -0.5, "0.25", True])
def test_invalid_sigma_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="sigma"):
        GaussianSmoothing(sigma=bad, backbone=nn.Flatten())  # type: ignore[arg-type]


def test_train_sigma_scale_only_changes_training_noise() -> None:
    backbone = Recorder()
    model = GaussianSmoothing(sigma=ConstantSigma(0.2), train_sigma_scale=2.0, backbone=backbone)
    x = torch.full((200, 1, 8, 8), 0.5)
    torch.manual_seed(3)
    model.per_example_loss(x, torch.zeros(200, dtype=torch.long))
    assert (backbone.seen[-1] - x).std().item() == pytest.approx(0.4, rel=0.03)
    assert model.smoothed_classifier().sigma_at(x[0]) == pytest.approx(0.2)
