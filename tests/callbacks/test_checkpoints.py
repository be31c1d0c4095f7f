"""best.ckpt by a metric logged only on some epochs, last.ckpt every epoch: public ModelCheckpoint options."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, best_and_last_checkpoints
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN

MONITOR = "val/robust_acc/ensemble"


def test_best_follows_the_evaluation_schedule_and_last_is_written_every_epoch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = DigitsDataModule(batch_size=64)
    module = Standard(backbone=SmallCNN(10, 1, width=8, hidden=16), mean=data.mean, std=data.std)
    evaluation = AdversarialEvaluation(
        [AttackSpec(name="fgsm", eps=0.05)], num_examples=32, batch_size=32, every_n_epochs=2, print_table=False
    )
    best, last = best_and_last_checkpoints(MONITOR, every_n_epochs=evaluation.every_n_epochs)
    logged: list[bool] = []  # whether the monitor was logged, per epoch
    last_epochs: list[int] = []  # the epoch stored in last.ckpt when the next epoch starts

    class Spy(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            path = tmp_path / "checkpoints" / "last.ckpt"
            if path.exists():
                last_epochs.append(torch.load(path, weights_only=False)["epoch"])

        def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                logged.append(MONITOR in trainer.callback_metrics)

    trainer = pl.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[evaluation, best, last, Spy()],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        logger=False,
    )
    trainer.fit(module, data)
    assert trainer.checkpoint_callback is best and isinstance(best, ModelCheckpoint)
    folder = Path(best.dirpath)
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert folder == tmp_path / "checkpoints"
    assert last_epochs == [0, 1] and torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 2
    assert Path(best.best_model_path).name == "best.ckpt" and best.best_model_score is not None
    assert torch.load(folder / "best.ckpt", weights_only=False)["epoch"] == 1  # the only epoch checked for best
    assert logged == [False, True, True]  # epoch 0 has no robust accuracy; the last epoch always evaluates
