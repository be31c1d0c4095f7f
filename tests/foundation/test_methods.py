"""Base module, PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019) behaviour (docs/adversarial_training.md)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlit.losses.trades import trades_kl
from robustlit.methods import PGDAT, TRADES, NonFiniteLossError, Standard
from robustlit.models import SmallCNN


def bn_backbone() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))


def test_trades_with_beta_zero_is_cross_entropy() -> None:
    module = TRADES(backbone=SmallCNN(10, 1, width=8), beta=0.0, eps=0.2, step_size=0.05, steps=3)
    x, y = batch()
    assert torch.allclose(module.training_loss(x, y), F.cross_entropy(module(x), y), rtol=1e-6, atol=0)


def test_pgd_at_with_eps_zero_is_cross_entropy() -> None:
    module = PGDAT(backbone=SmallCNN(10, 1, width=8), eps=0.0, step_size=0.0, steps=2)
    x, y = batch()
    assert torch.allclose(module.training_loss(x, y), F.cross_entropy(module(x), y))


def test_trades_kl_is_zero_at_the_clean_point_and_has_zero_gradient_there() -> None:
    model = SmallCNN(10, 1, width=8).eval()
    x = torch.rand(4, 1, 8, 8)
    logits = model(x).detach()
    x_adv = x.clone().requires_grad_(True)
    kl = trades_kl(logits, model(x_adv))
    (grad,) = torch.autograd.grad(kl.sum(), x_adv)
    assert kl.abs().max() < 1e-6
    assert grad.abs().max() < 1e-6  # why TRADES starts from x + 0.001 N(0, I)


@pytest.mark.parametrize("method", [PGDAT, TRADES])
def test_training_attack_runs_in_eval_mode_and_leaves_batchnorm_statistics_alone(method: type) -> None:
    module = method(backbone=bn_backbone(), eps=0.1, step_size=0.03, steps=3).train()
    bn = module.backbone[1]
    seen_modes: list[bool] = []
    hook = bn.register_forward_pre_hook(lambda m, _: seen_modes.append(m.training))
    before = bn.running_mean.clone()
    x, y = batch()
    module.adversarial_examples(x, y)
    hook.remove()
    assert seen_modes and not any(seen_modes)
    assert torch.equal(bn.running_mean, before)
    assert module.training and bn.training
    module.training_loss(x, y).backward()  # the outer loss runs in train mode and does move them
    assert not torch.equal(bn.running_mean, before)
    assert all(p.grad is not None for p in module.parameters())


def test_trades_gradient_flows_through_the_clean_branch_of_the_kl() -> None:
    module = TRADES(backbone=SmallCNN(10, 1, width=8), beta=6.0, eps=0.2, step_size=0.05, steps=2)
    x, y = batch()
    torch.manual_seed(0)
    full = torch.autograd.grad(module.training_loss(x, y), module.backbone.head[-1].weight)[0]
    torch.manual_seed(0)
    x_adv = module.adversarial_examples(x, y)
    logits_clean = module(x)
    detached = F.cross_entropy(logits_clean, y) + 6.0 * trades_kl(logits_clean.detach(), module(x_adv)).mean()
    part = torch.autograd.grad(detached, module.backbone.head[-1].weight)[0]
    assert not torch.allclose(full, part)


def test_out_of_range_hyperparameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"outside the Linf range \[0, 1\]"):
        PGDAT(backbone=SmallCNN(), eps=2.0)


def test_nan_loss_stops_training_with_advice() -> None:
    class Exploding(Standard):
        def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return super().training_loss(x, y) * float("nan")

    from robustlit.data import DigitsDataModule

    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with pytest.raises(NonFiniteLossError, match="ckpt_path"):
        trainer.fit(Exploding(backbone=SmallCNN(width=8)), DigitsDataModule())
