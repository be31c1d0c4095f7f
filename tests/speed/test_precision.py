"""Mixed precision over the whole loop (docs/speed.md): training attacks follow the Trainer's precision,
evaluation attacks run in float32 unless their spec says ``bf16``, and then the metric name says so."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn

from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.data import DigitsDataModule
from robustlit.methods import TRADES
from robustlit.models import SmallCNN


class AutocastProbe(nn.Module):
    """Wraps a model and records, per forward call, whether CPU autocast was on and the logits' dtype."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: Tensor) -> Tensor:
        out = self.inner(x)
        self.calls.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out


def _probe() -> AutocastProbe:
    return AutocastProbe(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))


def test_metric_names_keep_fp32_and_say_bf16() -> None:
    assert AttackSpec("pgd", "Linf", 0.2, 50).metric_name == "pgd50_linf_0.2"
    assert AttackSpec("pgd", "Linf", 0.2, 50, precision="bf16").metric_name == "pgd50_bf16_linf_0.2"
    assert (
        AttackSpec("native_pgd", "Linf", 0.2, 20, precision="bf16").metric_name == "native_pgd20_margin_bf16_linf_0.2"
    )
    with pytest.raises(ValueError, match="precision"):
        AttackSpec("pgd", precision="fp16")


@pytest.mark.parametrize("name", ["pgd", "native_pgd"])
def test_evaluation_attack_is_fp32_even_under_caller_autocast(name: str) -> None:
    model = _probe()
    attack = build_attack(AttackSpec(name, "Linf", 0.1, 3), model, 10)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = attack(x, y)
    assert model.calls and all(not on and dtype == torch.float32 for on, dtype in model.calls), model.calls
    assert x_adv.dtype == torch.float32


def test_evaluation_attack_in_bf16_when_asked() -> None:
    model = _probe()
    attack = build_attack(AttackSpec("native_pgd", "Linf", 0.1, 3, precision="bf16"), model, 10)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    x_adv = attack(x, y)
    assert model.calls and all(on and dtype == torch.bfloat16 for on, dtype in model.calls), model.calls
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.seen: dict[str, bool] = {}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen["validation_epoch_end"] = torch.is_autocast_enabled("cpu")


def test_bf16_mixed_reaches_training_attacks_not_callbacks() -> None:
    """Lightning autocasts training_step, so TRADES' inner maximisation runs in bf16; callbacks run outside it."""
    data = DigitsDataModule(batch_size=32)
    module = TRADES(backbone=SmallCNN(10, 1, width=4, hidden=16), mean=data.mean, std=data.std, eps=0.2, steps=2)
    probe = AutocastProbe(module.classifier[1])
    module.classifier[1] = probe
    recorder = _Recorder()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        precision="bf16-mixed",
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[recorder],
    )
    trainer.fit(module, data)
    # 1 clean pass + 2 attack steps + 2 loss passes in training; every one autocast to bf16
    training_calls = probe.calls[:5]
    assert len(probe.calls) >= 5
    assert all(on and dtype == torch.bfloat16 for on, dtype in training_calls), training_calls
    assert recorder.seen == {"validation_epoch_end": False}
