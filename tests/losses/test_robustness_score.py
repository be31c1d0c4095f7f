"""Robustness score = smallest Linf radius that flips the prediction (Qin et al. 2021; docs/calibration.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlit.losses.robustness_score import _loss_against, flip_radius, robustness_score


@pytest.fixture(autouse=True)
def single_thread():
    """Hundreds of tiny attack steps: intra-op threads only add contention on a small (2-core) runner."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TwoLogitLinear(nn.Module):
    """Binary linear model with logits [0, scale · (wᵀx + b)]."""

    def __init__(self, w: torch.Tensor, b: float, scale: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(w.numel(), 1)
        with torch.no_grad():
            self.linear.weight.copy_(w.view(1, -1))
            self.linear.bias.fill_(b)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scale * self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


@pytest.fixture
def setup() -> tuple[torch.Tensor, float, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    w = torch.randn(6)
    b = 0.1
    x = torch.randn(40, 6) * 0.3
    distance = (x @ w + b).abs() / w.abs().sum()
    return w, b, x, distance


GRID_STEP = 0.005


def grid(top: float) -> list[float]:
    return torch.arange(1, int(top / GRID_STEP) + 2).mul(GRID_STEP).tolist()


def test_matches_closed_form_linf_distance(setup) -> None:
    w, b, x, distance = setup
    model = TwoLogitLinear(w, b)
    radii = grid(distance.max().item())
    score = robustness_score(model, x, radii, steps=10, step_size_factor=0.25, bounds=None)
    assert score.flipped.all()
    assert (score.radius >= distance - 1e-5).all()
    assert (score.radius <= distance + GRID_STEP + 1e-5).all()


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_scaling_logits_does_not_change_score(setup, loss: str) -> None:
    w, b, x, distance = setup
    radii = grid(distance.max().item())
    base = robustness_score(TwoLogitLinear(w, b), x, radii, bounds=None, loss=loss)
    # Scale 1000 puts logit gaps in the thousands, far beyond float32 softmax saturation (about 17).
    scaled = robustness_score(TwoLogitLinear(w, b, scale=1000.0), x, radii, bounds=None, loss=loss)
    assert base.flipped.all() and scaled.flipped.all()
    assert torch.equal(base.radius, scaled.radius)


def test_ce_attack_loss_is_log_cross_entropy_without_saturation() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4, dtype=torch.float64) * 3
    predicted = logits.argmax(dim=1)
    loss_fn = _loss_against(predicted, "ce")
    expected = torch.log(torch.nn.functional.cross_entropy(logits, predicted, reduction="none"))
    assert torch.allclose(loss_fn(logits), expected, atol=1e-6)
    huge = (logits * 1000).float().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(huge).sum(), huge)
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=1) > 0.5).all()  # O(1) gradient, not an underflowed 0


def test_unflipped_examples_get_the_cap_and_state_is_restored(setup) -> None:
    w, b, x, distance = setup
    model = TwoLogitLinear(w, b)
    model.train()
    radii = [0.01, 0.02, 0.03]
    with torch.no_grad():  # as in Lightning's validation loop
        score = robustness_score(model, x, radii, bounds=None)
    far = distance > 0.03 + 1e-4
    near = distance < 0.03 - 1e-4
    assert far.any() and near.any()
    assert not score.flipped[far].any()
    assert (score.radius[far] == 0.03).all()
    assert score.flipped[near].all()
    assert model.training
    assert all(p.requires_grad for p in model.parameters())


def test_image_domain_and_validation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(8, 1, 4, 4)
    score = robustness_score(model, x, [0.05, 0.1, 0.2, 0.5, 1.0])
    assert score.radius.shape == (8,) and score.flipped.dtype == torch.bool
    # Scores are grid values; with a deterministic attack, a coarser grid never gives a smaller score.
    grid_values = torch.tensor([0.05, 0.1, 0.2, 0.5, 1.0])
    assert torch.isclose(score.radius.unsqueeze(1), grid_values).any(dim=1).all()
    coarse = robustness_score(model, x, [0.1, 0.5, 1.0])
    assert (coarse.radius >= score.radius).all()
    with pytest.raises(ValueError):
        robustness_score(model, x, [0.1, 0.05])
    with pytest.raises(ValueError):
        robustness_score(model, x * 3, [0.1])


def test_flip_radius_is_continuous_and_close_to_the_closed_form_distance(setup) -> None:
    """Bisection: one score per example (no grid), never below the true Linf distance, within the stated
    resolution max_radius / 2^k plus what a 10-step attack misses."""
    w, b, x, distance = setup
    model = TwoLogitLinear(w, b)
    top = float(distance.max()) * 1.5
    score = flip_radius(model, x, top, bisection_steps=10, steps=10, bounds=None)
    assert score.flipped.all()
    assert (score.radius >= distance - 1e-5).all()
    assert (score.radius - distance).abs().max() <= top / 2**10 + 1e-3
    assert score.radius.unique().numel() == x.shape[0]  # continuous: no ties (the grid score ties heavily)
    cap = flip_radius(model, x, float(distance.min()) / 2, bisection_steps=3, bounds=None)
    assert not cap.flipped.any() and torch.all(cap.radius == float(distance.min()) / 2)


def test_flip_radius_rejects_bad_arguments() -> None:
    model = TwoLogitLinear(torch.ones(3), 0.0)
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="max_radius"):
        flip_radius(model, x, 0.0)
    with pytest.raises(ValueError, match="pixel units"):
        flip_radius(model, x, 2.0)
