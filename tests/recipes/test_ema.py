"""EMAWeights: the exponential moving average of the weights is what evaluations attack, what checkpoints
hold, what ``robustlit.load_classifier`` returns and what ``test --ckpt_path`` evaluates."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

import robustlit
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, EMAWeights
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN

DECAY = 0.7
STEPS_PER_EPOCH = 3


def weights(module: torch.nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class RawWeights(pl.Callback):
    """The raw weights after every optimizer step, and the callback's average at every epoch end."""

    def __init__(self, ema: EMAWeights) -> None:
        self.ema = ema
        self.after_step: list[dict[str, Tensor]] = []
        self.average_at_epoch_end: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.after_step.append(weights(pl_module.classifier))

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.average_at_epoch_end.append(weights(self.ema._average_model.module.classifier))


class SpyEvaluation(AdversarialEvaluation):
    """An adversarial evaluation that records the weights it attacks."""

    def __init__(self) -> None:
        super().__init__(
            [AttackSpec("pgd", "Linf", 0.2, 2, 0.1)], num_examples=32, batch_size=32, stages=["validate", "test"]
        )
        self.print_table = False
        self.attacked: dict[str, list[dict[str, Tensor]]] = {"val": [], "test": []}

    def evaluate_stage(self, trainer, pl_module, dataset, stage):  # noqa: ANN001, ANN201
        self.attacked[stage].append(weights(pl_module.classifier))
        return super().evaluate_stage(trainer, pl_module, dataset, stage)


def moving_average(history: list[dict[str, Tensor]], decay: float) -> dict[str, Tensor]:
    """θ_EMA: the first update copies θ, then θ_EMA ← τ θ_EMA + (1 − τ) θ after every step."""
    average = {k: v.clone() for k, v in history[0].items()}
    for step in history[1:]:
        average = {k: decay * average[k] + (1 - decay) * step[k] for k in average}
    return average


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def assert_different(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-3


def test_ema_weights_are_evaluated_checkpointed_and_loaded(tmp_path: Path) -> None:
    ema = EMAWeights(decay=DECAY)
    raw = RawWeights(ema)
    spy = SpyEvaluation()  # listed after the EMA callback: Lightning's own would have swapped back already
    module = Standard(
        backbone=SmallCNN(10, 1, width=4, hidden=16), optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9)
    )
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=STEPS_PER_EPOCH,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[raw, ema, spy, ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None)],
    )
    data = DigitsDataModule(batch_size=32)
    trainer.fit(module, datamodule=data)

    assert len(raw.after_step) == 2 * STEPS_PER_EPOCH and len(spy.attacked["val"]) == 2
    for epoch in range(2):
        expected = moving_average(raw.after_step[: STEPS_PER_EPOCH * (epoch + 1)], DECAY)
        assert_same(raw.average_at_epoch_end[epoch], expected)  # the callback's average is the EMA
        assert_same(spy.attacked["val"][epoch], expected)  # the evaluation attacked the EMA weights ...
        assert_different(spy.attacked["val"][epoch], raw.after_step[STEPS_PER_EPOCH * (epoch + 1) - 1])  # not raw

    final_ema = moving_average(raw.after_step, DECAY)
    checkpoint_path = tmp_path / "last.ckpt"
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    raw_in_checkpoint = {
        k.removeprefix("classifier."): v
        for k, v in checkpoint["current_model_state"].items()
        if k in {f"classifier.{n}" for n in final_ema}
    }
    assert_same(raw_in_checkpoint, raw.after_step[-1])  # the raw weights are kept for resuming
    assert_same(weights(robustlit.load_classifier(checkpoint_path)), final_ema)
    assert_same(weights(module.classifier), final_ema)  # after fit the module holds the average

    module.classifier.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    trainer.test(module, datamodule=data, ckpt_path=str(checkpoint_path), weights_only=False)
    assert_same(spy.attacked["test"][-1], final_ema)  # test --ckpt_path attacks the EMA weights
