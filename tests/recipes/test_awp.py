"""Adversarial weight perturbation (Wu et al. 2020, Algorithm 1) on PGD-AT and TRADES.

Must show: the perturbation has relative size γ per layer, and it is removed after each step: the weights
after a Lightning training step equal one SGD step from the unperturbed weights w with the gradient taken
at w + v, where v is computed here independently with ``torch.func.functional_call``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from robustlit.losses.trades import trades_kl
from robustlit.methods import PGDATAWP, TRADESAWP
from robustlit.utils.weight_perturbation import (
    adversarial_weight_perturbation,
    frozen_batchnorm_statistics,
    perturbable_parameters,
)

GAMMA = 0.05  # larger than the papers' 5e-3 so that the effect on the step is far above float noise
LR = 0.5


def toy_backbone() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3))


def toy_batch() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(24, 1, 4, 4, generator=generator), torch.randint(0, 3, (24,), generator=generator)


def make(method: type, **kwargs: object) -> pl.LightningModule:
    return method(
        backbone=toy_backbone(),
        num_classes=3,
        eps=0.2,
        step_size=0.1,
        steps=3,
        random_start="none",  # deterministic x' so that the expectation can be recomputed
        awp_gamma=GAMMA,
        optimizer=lambda params: torch.optim.SGD(params, lr=LR),
        **kwargs,
    )


def objective(method: type, logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    if method is PGDATAWP:
        return F.cross_entropy(logits_adv, y)
    return F.cross_entropy(logits_clean, y) + beta * trades_kl(logits_clean, logits_adv).mean()


class PerturbationProbe(pl.Callback):
    """Records the perturbation in place when the loss is back-propagated."""

    def __init__(self) -> None:
        self.relative_sizes: list[float] = []
        self.applied_at_backward = False

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        perturbation = pl_module.weight_perturbation
        self.applied_at_backward = perturbation is not None and perturbation.applied
        self.relative_sizes = perturbation.relative_sizes() if perturbation is not None else []


@pytest.mark.parametrize("method", [PGDATAWP, TRADESAWP])
def test_weights_after_a_step_are_an_sgd_step_from_w_with_the_gradient_at_w_plus_v(method: type) -> None:
    module = make(method)
    beta = getattr(module, "beta", 0.0)
    x, y = toy_batch()
    w0 = {name: p.detach().clone() for name, p in module.classifier.named_parameters()}
    x_adv = module.threat_model.maximize(module.classifier, x, module.attack_loss(x, y)).detach()

    # the expectation, computed independently: v_l = γ ‖w_l‖ g_l / ‖g_l‖ for weight matrices only
    def loss_at(params: dict[str, Tensor]) -> Tensor:
        clean = functional_call(module.classifier, params, (x,))
        adv = functional_call(module.classifier, params, (x_adv,))
        return objective(method, clean, adv, y, beta)

    leaves = {name: w.clone().requires_grad_() for name, w in w0.items()}
    ascent = torch.autograd.grad(loss_at(leaves), list(leaves.values()))
    v = {
        name: GAMMA * w0[name].norm() * g / g.norm() if w0[name].dim() > 1 else torch.zeros_like(g)
        for name, g in zip(leaves, ascent, strict=True)
    }
    perturbed = {name: (w0[name] + v[name]).requires_grad_() for name in w0}
    grads_at_perturbed = dict(
        zip(perturbed, torch.autograd.grad(loss_at(perturbed), list(perturbed.values())), strict=True)
    )
    expected = {name: w0[name] - LR * grads_at_perturbed[name] for name in w0}
    plain = dict(zip(leaves, torch.autograd.grad(loss_at(leaves), list(leaves.values())), strict=True))

    probe = PerturbationProbe()
    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[probe],
        inference_mode=False,
    )
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=len(y)))

    assert probe.applied_at_backward, "the loss was not back-propagated at perturbed weights"
    assert probe.relative_sizes == pytest.approx([GAMMA] * 2, rel=1e-5)  # two weight matrices, ‖v_l‖ = γ ‖w_l‖
    assert module.weight_perturbation is None
    for name, p in module.classifier.named_parameters():
        assert torch.allclose(p.detach(), expected[name], atol=1e-6), name
    # the test can fail: the AWP step differs from the plain step from w by far more than the tolerance
    differences = [(expected[n] - (w0[n] - LR * plain[n])).abs().max().item() for n in w0]
    assert max(differences) > 1e-4


def test_no_perturbation_before_the_warmup_epoch() -> None:
    module = make(PGDATAWP, awp_warmup=1)
    assert not module.awp_active
    x, y = toy_batch()
    module.training_loss(x, y)
    assert module.weight_perturbation is None


def test_perturbation_has_relative_size_gamma_per_layer_and_is_removed_exactly() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    ).train()
    x, y = torch.rand(10, 1, 4, 4), torch.randint(0, 3, (10,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with frozen_batchnorm_statistics(model), torch.no_grad():
        loss_at_w = F.cross_entropy(model(x), y).item()
    perturbation = adversarial_weight_perturbation(model, lambda: F.cross_entropy(model(x), y), 5e-3)
    # the ascent left batch-norm running statistics (and everything else) untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    names = [name for name, _ in perturbable_parameters(model)]
    assert names == ["0.weight", "4.weight"]  # conv kernel and linear weight; biases and BN affine are not perturbed
    perturbation.apply()
    assert perturbation.relative_sizes() == pytest.approx([5e-3, 5e-3], rel=1e-5)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {"0.weight", "4.weight"}
    with frozen_batchnorm_statistics(model), torch.no_grad():
        assert F.cross_entropy(model(x), y).item() > loss_at_w  # an ascent direction
    perturbation.remove()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
