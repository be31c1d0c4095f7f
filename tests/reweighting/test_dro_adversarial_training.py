"""DRO-AT (Sow et al. 2024; docs/reweighting.md): r = inf is plain AT, SCGD weights, log-barrier attack."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlit.attacks.log_barrier import LogBarrierThreatModel, log_barrier_attack, solve_log_barrier
from robustlit.data import DigitsDataModule
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.trades import TRADES
from robustlit.models import SmallCNN

THREAT = {"eps": 0.2, "step_size": 0.05, "steps": 3}


def make(cls: type, **kwargs: object) -> pl.LightningModule:
    torch.manual_seed(0)
    return cls(backbone=SmallCNN(10, 1, width=8, hidden=16), **THREAT, **kwargs)


def batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize(
    ("reference", "base_kwargs"),
    [(PGDAT, {"base_loss": "pgd_at"}), (TRADES, {"base_loss": "trades", "beta": 6.0})],
)
@pytest.mark.parametrize("temperature", [None, math.inf])
def test_infinite_temperature_is_exactly_plain_adversarial_training(
    reference: type, base_kwargs: dict, temperature: float | None
) -> None:
    x, y = batch()
    plain = make(reference, **({"beta": 6.0} if reference is TRADES else {}))
    dro = make(DROAdversarialTraining, temperature=temperature, **base_kwargs)
    torch.manual_seed(7)
    loss_plain = plain.training_loss(x, y)
    grads_plain = torch.autograd.grad(loss_plain, list(plain.parameters()))
    torch.manual_seed(7)
    loss_dro = dro.training_loss(x, y)
    grads_dro = torch.autograd.grad(loss_dro, list(dro.parameters()))
    assert loss_dro.item() == loss_plain.item()  # same adversarial examples, same loss, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(grads_plain, grads_dro, strict=True))
    assert torch.allclose(dro.last_weights, torch.full((16,), 1 / 16))


def test_scgd_weights_use_the_running_normaliser_across_batches() -> None:
    tau, r = 0.3, 0.5
    module = make(DROAdversarialTraining, temperature=r, momentum=tau)
    losses_seen, log_u = [], None
    for step in range(2):
        x, y = batch()
        torch.manual_seed(step)
        losses = module.per_example_loss(x, y).detach()
        torch.manual_seed(step)
        loss = module.training_loss(x, y)
        batch_mean = torch.exp(losses / r).mean()
        expected_u = batch_mean if log_u is None else (1 - tau) * log_u.exp() + tau * batch_mean
        log_u = expected_u.log()
        assert torch.allclose(module.normaliser.log_u, log_u, atol=1e-5)
        omega = torch.exp(losses / r) / expected_u
        assert torch.allclose(loss, (omega * losses).mean(), rtol=1e-5)
        losses_seen.append(losses)
    # the logged (normalised) weights are softmax(l / r): on the simplex, ordered like the losses
    share = module.last_weights
    assert torch.allclose(share, torch.softmax(losses_seen[-1] / r, dim=0), atol=1e-6)
    assert torch.equal(share.argsort(), losses_seen[-1].argsort())


def test_weights_logged_during_fit_sum_to_one() -> None:
    module = make(DROAdversarialTraining, temperature=0.5, inner_attack="log_barrier")
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
    )
    trainer.fit(module, DigitsDataModule(batch_size=32))
    metrics = trainer.callback_metrics
    assert metrics["train/weights/sum"].item() == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(metrics["train/dro/log_u"])
    assert 0 < metrics["train/weights/ess"].item() <= 1
    assert metrics["train/weights/max"].item() > 1 / 32  # non-uniform at r = 0.5
    assert module.last_weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert bool(module.normaliser.initialised)


def linear_model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_log_barrier_attack_stays_strictly_inside_and_approaches_pgd_as_c_goes_to_zero() -> None:
    model = linear_model()
    x = 0.3 + 0.4 * torch.rand(8, 1, 4, 4)  # away from the [0, 1] bounds

    def objective(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, 1] - logits[:, 0]  # a margin, linear in x: its gradient sign is constant

    eps = 0.1
    # With a constant gradient sign, PGD's maximiser of a linear objective is the corner x + eps sign(g).
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(model(x_req)).sum(), x_req)
    corner = x + eps * grad.sign()
    distance = []
    for c in (1e-9, 1e-6, 1e-3, 1e-1):
        torch.manual_seed(0)
        x_adv = log_barrier_attack(model, x, objective, eps=eps, step_size=0.02, steps=60, barrier_weight=c)
        assert (x_adv - x).abs().max() < eps  # strictly inside: the barrier stays finite
        distance.append((x_adv - corner).abs().max().item())
    # the barrier optimum sits about c / |g_k| inside each face: it tends to the PGD corner as c -> 0
    assert distance == sorted(distance)
    assert distance[0] < 1e-3 < distance[-1]


@pytest.mark.parametrize("c", [1e-3, 1e-2])
def test_the_tolerance_solver_reaches_the_closed_form_barrier_maximiser(c: float) -> None:
    """For a linear objective g·δ the barrier problem separates per coordinate: the maximiser of
    g δ + c [log(ε − δ) + log(ε + δ)] is δ* = (−c + sqrt(c² + g² ε²)) / g. The solver with tol stops within
    about tol of it; the fixed 10-step budget (DRO-AT's default inner attack) does not get that close."""
    model = linear_model()
    x = 0.3 + 0.4 * torch.rand(8, 1, 4, 4)

    def objective(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, 1] - logits[:, 0]

    eps, tol = 0.1, 1e-4
    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(model(x_req)).sum(), x_req)
    optimum = (-c + torch.sqrt(c**2 + g**2 * eps**2)) / g
    torch.manual_seed(0)
    solution = solve_log_barrier(
        model, x, objective, eps, step_size=0.02, barrier_weight=c, tol=tol, max_steps=500, bounds=None
    )
    assert solution.converged.all() and solution.iterations < 500
    error = ((solution.x_adv - x) - optimum).abs().max().item()
    assert error <= 2 * tol
    torch.manual_seed(0)
    fixed = log_barrier_attack(model, x, objective, eps, step_size=0.02, steps=10, barrier_weight=c)
    assert ((fixed - x) - optimum).abs().max().item() > 10 * error
    threat = LogBarrierThreatModel(eps=eps, step_size=0.02, steps=10, barrier_weight=c, tol=tol, bounds=None)
    torch.manual_seed(0)
    assert torch.equal(threat.maximize(model, x, objective), solution.x_adv)


def test_log_barrier_attack_respects_pixel_bounds_and_restores_modes() -> None:
    model = linear_model().train()
    x = torch.cat([torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)])
    y = torch.tensor([0, 1, 2, 0])
    x_adv = log_barrier_attack(
        model, x, lambda z: F.cross_entropy(z, y, reduction="none"), 0.2, 0.05, 10, barrier_weight=1e-3
    )
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() < 0.2
    assert model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1.0}, "temperature"),
        ({"momentum": 1.5}, "momentum"),
        ({"inner_attack": "log_barrier", "norm": "L2"}, "log_barrier"),
        ({"base_loss": "mart"}, "base_loss"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_field_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DROAdversarialTraining(backbone=SmallCNN(width=8), **kwargs)
