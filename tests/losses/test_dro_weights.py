"""DONE / DRO weights, Gibbs identity, SCGD running normaliser, log barrier (Sow et al. 2024; docs/reweighting.md)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robustlit.attacks.log_barrier import log_barrier_penalty
from robustlit.losses.dro import (
    DROWeights,
    RunningNormaliser,
    dro_objective,
    dro_weights,
    weighted_mean,
)
from robustlit.losses.instance_weights import LossTerms


@pytest.fixture
def losses() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(32) * 3


def test_weights_sum_to_one_and_grow_with_loss(losses: torch.Tensor) -> None:
    for r in (0.05, 0.5, 1.0, 10.0):
        w = dro_weights(losses, r)
        assert torch.isclose(w.sum(), torch.tensor(1.0), atol=1e-6)
        order = torch.argsort(losses)
        assert torch.all(w[order][1:] >= w[order][:-1])
    assert dro_weights(losses, 1.0)[losses.argmax()] > dro_weights(losses, 1.0)[losses.argmin()]


def test_weights_uniform_for_large_r_and_one_hot_for_small_r(losses: torch.Tensor) -> None:
    n = losses.numel()
    assert torch.allclose(dro_weights(losses, 1e6), torch.full((n,), 1 / n), atol=1e-6)
    assert torch.equal(dro_weights(losses, math.inf), torch.full((n,), 1 / n))
    sharp = dro_weights(losses, 1e-4)
    assert torch.isfinite(sharp).all()
    assert sharp[losses.argmax()] > 1 - 1e-6
    # The DRO objective interpolates between the mean (r -> inf) and the max (r -> 0) loss.
    assert torch.isclose(dro_objective(losses, 1e6), losses.mean(), atol=1e-3)
    assert torch.isclose(dro_objective(losses, 1e-3), losses.max(), atol=1e-2)
    assert dro_objective(losses, math.inf) == losses.mean()


def test_gibbs_identity(losses: torch.Tensor) -> None:
    losses = losses.double()
    n = losses.numel()
    r = 0.7
    w = dro_weights(losses, r)
    value_at_optimum = (w * losses).sum() - r * (w * torch.log(n * w)).sum()
    assert torch.isclose(value_at_optimum, dro_objective(losses, r), atol=1e-10)
    torch.manual_seed(1)
    for _ in range(20):
        other = torch.distributions.Dirichlet(torch.ones(n, dtype=torch.float64)).sample()
        value = (other * losses).sum() - r * (other * torch.log(n * other)).sum()
        assert value <= dro_objective(losses, r) + 1e-12


@pytest.mark.parametrize("r", [0.3, 50.0])  # both numerical branches of dro_objective
def test_objective_gradient_equals_weighted_loss_gradient(r: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 5)
    y = torch.randint(0, 3, (16,))
    weight = torch.randn(3, 5, requires_grad=True)

    per_example = F.cross_entropy(x @ weight.T, y, reduction="none")
    (grad_objective,) = torch.autograd.grad(dro_objective(per_example, r), weight)

    per_example = F.cross_entropy(x @ weight.T, y, reduction="none")
    w = dro_weights(per_example, r).detach()
    (grad_weighted,) = torch.autograd.grad((w * per_example).sum(), weight)
    assert torch.allclose(grad_objective, grad_weighted, atol=1e-6)
    assert grad_objective.abs().sum() > 0


def test_weighted_mean() -> None:
    losses = torch.tensor([1.0, 2.0, 3.0, 6.0])
    weights = torch.tensor([1.0, 1.0, 0.0, 2.0])
    assert weighted_mean(losses, weights) == pytest.approx(15 / 4)
    assert weighted_mean(losses, weights, self_normalised=True) == pytest.approx(15 / 4)
    assert weighted_mean(losses, torch.full((4,), 0.25), self_normalised=True) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        weighted_mean(losses, weights[:3])


def test_running_normaliser_first_call_is_batch_mean(losses: torch.Tensor) -> None:
    r = 0.5
    norm = RunningNormaliser()
    omega = norm.update(losses, r, momentum=0.1)
    g = torch.exp(losses.double() / r).mean()
    assert torch.isclose(norm.value.double(), g, rtol=1e-5)
    assert torch.allclose(omega.double(), torch.exp(losses.double() / r) / g, rtol=1e-5)
    assert omega.mean() == pytest.approx(1.0, rel=1e-5)
    assert not omega.requires_grad


def test_running_normaliser_momentum(losses: torch.Tensor) -> None:
    r = 0.5
    first, second = losses[:16], losses[16:] + 1.0
    g1 = torch.exp(first.double() / r).mean()
    g2 = torch.exp(second.double() / r).mean()

    norm = RunningNormaliser()
    norm.update(first, r, momentum=0.3)
    omega = norm.update(second, r, momentum=0.3)
    expected_u = 0.7 * g1 + 0.3 * g2
    assert torch.isclose(norm.value.double(), expected_u, rtol=1e-5)
    assert torch.allclose(omega.double(), torch.exp(second.double() / r) / expected_u, rtol=1e-5)
    # The harder batch gets weights averaging above 1: the cross-batch signal SCGD keeps.
    assert omega.mean() > 1.0

    norm_tau1 = RunningNormaliser()
    norm_tau1.update(first, r, momentum=1.0)
    omega1 = norm_tau1.update(second, r, momentum=1.0)
    assert torch.isclose(norm_tau1.value.double(), g2, rtol=1e-5)
    assert omega1.mean() == pytest.approx(1.0, rel=1e-5)

    frozen = RunningNormaliser()
    frozen.update(first, r, momentum=0.0)
    frozen.update(second, r, momentum=0.0)
    assert torch.isclose(frozen.value.double(), g1, rtol=1e-5)

    normalised = RunningNormaliser(normalise_weights=True)
    normalised.update(first, r, momentum=0.3)
    omega_n = normalised.update(second, r, momentum=0.3)
    assert omega_n.mean() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(omega_n, second.numel() * dro_weights(second, r), rtol=1e-5)


def test_running_normaliser_is_stable_for_small_temperature() -> None:
    norm = RunningNormaliser()
    losses = torch.tensor([10.0, 10.5, 11.0])
    omega = norm.update(losses, 0.01, momentum=0.5)  # l/r = 1100: exp overflows outside log space
    assert torch.isfinite(norm.log_u) and torch.isfinite(omega).all()
    assert omega.argmax() == 2


def test_running_normaliser_state_dict_round_trip(losses: torch.Tensor) -> None:
    r = 0.8
    norm = RunningNormaliser()
    norm.update(losses[:16], r, momentum=0.2)
    restored = RunningNormaliser()
    assert set(restored.state_dict()) == {"log_u", "initialised"}
    restored.load_state_dict(norm.state_dict())
    assert bool(restored.initialised)
    assert torch.equal(restored.log_u, norm.log_u)
    assert torch.allclose(restored.update(losses[16:], r, 0.2), norm.update(losses[16:], r, 0.2))
    assert torch.equal(restored.log_u, norm.log_u)
    norm.reset()
    assert not bool(norm.initialised)


def test_running_normaliser_rejects_bad_arguments(losses: torch.Tensor) -> None:
    norm = RunningNormaliser()
    with pytest.raises(ValueError):
        norm.update(losses, 1.0, momentum=1.5)
    with pytest.raises(ValueError):
        norm.update(losses, 0.0, momentum=0.5)
    with pytest.raises(ValueError):
        dro_weights(losses.view(4, 8), 1.0)


def test_barrier_finite_inside_infinite_outside() -> None:
    eps, c = 0.1, 0.01
    inside = torch.tensor([[0.0, 0.05, -0.099], [0.01, 0.0, 0.0]])
    penalty = log_barrier_penalty(inside, eps, c)
    assert torch.isfinite(penalty).all()
    expected = -c * (torch.log(eps - inside) + torch.log(eps + inside)).sum(dim=1)
    assert torch.allclose(penalty, expected)

    outside = torch.tensor([[0.0, 0.1, 0.0], [0.0, 0.0, -0.2], [0.0, 0.0, 0.05]], requires_grad=True)
    penalty = log_barrier_penalty(outside, eps, c)
    assert torch.isinf(penalty[:2]).all() and (penalty[:2] > 0).all()
    assert torch.isfinite(penalty[2])
    penalty[2].backward()
    assert torch.isfinite(outside.grad).all()
    assert torch.isinf(log_barrier_penalty(torch.full((1, 4), 0.5), eps, 0.0)).all()
    # The barrier grows towards the boundary.
    near = log_barrier_penalty(torch.tensor([[0.09]]), eps, c)
    centre = log_barrier_penalty(torch.tensor([[0.0]]), eps, c)
    assert near > centre


def test_barrier_minimiser_stays_inside_and_tends_to_the_box_corner() -> None:
    """Linear attack objective −wᵀδ + barrier: the stationary point solves w δ² + 2cδ − wε² = 0."""
    w = torch.tensor([[0.5, -2.0, 1.0, -0.1]], dtype=torch.float64)
    eps = 0.1
    previous_gap = math.inf
    for c in (1e-1, 1e-2, 1e-3, 1e-4):
        delta = ((-c + torch.sqrt(c**2 + w**2 * eps**2)) / w).requires_grad_(True)
        objective = -(w * delta).sum() + log_barrier_penalty(delta, eps, c).sum()
        (grad,) = torch.autograd.grad(objective, delta)
        assert grad.abs().max() < 1e-9
        assert (delta.abs() < eps).all()
        gap = (delta.detach() - eps * torch.sign(w)).abs().max().item()
        assert gap < previous_gap
        previous_gap = gap
    assert previous_gap < 1e-2


def test_paper_equations_on_a_hand_computed_toy_batch() -> None:
    """Eq. 5 (w* = softmax(ℓ/r)), its value r log mean exp(ℓ/r), and the SCGD form of eq. 6, by hand.

    r = 0.5 and losses chosen so that exp(ℓ/r) are small integers: batch 1 has exp(ℓ/r) = (1, 3), batch 2
    has (5, 7). Then w* = (1/4, 3/4); F = 0.5 ln 2; u_1 = 2, ω = (1/2, 3/2); with τ = 1/4,
    u_2 = 3/4 · 2 + 1/4 · 6 = 3 and ω = (5/3, 7/3).
    """
    r, tau = 0.5, 0.25
    first = torch.tensor([0.0, r * math.log(3.0)], dtype=torch.float64)
    second = torch.tensor([r * math.log(5.0), r * math.log(7.0)], dtype=torch.float64)

    assert torch.allclose(dro_weights(first, r), torch.tensor([0.25, 0.75], dtype=torch.float64), atol=1e-12)
    assert dro_objective(first, r).item() == pytest.approx(0.5 * math.log(2.0), abs=1e-12)

    weighting = DROWeights(temperature=r, momentum=tau)
    omega1 = weighting(_terms(first))
    assert weighting.normaliser.value.item() == pytest.approx(2.0, rel=1e-6)
    assert torch.allclose(omega1, torch.tensor([0.5, 1.5], dtype=torch.float64), rtol=1e-6)
    omega2 = weighting(_terms(second))
    assert weighting.normaliser.value.item() == pytest.approx(3.0, rel=1e-6)
    assert torch.allclose(omega2, torch.tensor([5 / 3, 7 / 3], dtype=torch.float64), rtol=1e-6)
    # The training loss (1/|B|) Σ ω_i ℓ_i, whose gradient is the SCGD estimate of ∇ r log g.
    expected = (5 / 3 * second[0] + 7 / 3 * second[1]) / 2
    assert weighted_mean(second, omega2).item() == pytest.approx(expected.item(), rel=1e-6)


def _terms(losses: torch.Tensor) -> LossTerms:
    n = losses.numel()
    return LossTerms(
        natural=torch.zeros_like(losses),
        robust=losses,
        y=torch.zeros(n, dtype=torch.long),
        logits_adv=torch.zeros(n, 2, dtype=losses.dtype),
        kappa=torch.zeros(n, dtype=torch.long),
        attack_steps=1,
    )
