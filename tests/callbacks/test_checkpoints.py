"""best.ckpt by a metric logged only on some epochs, last.ckpt every epoch (robustlit.callbacks.checkpoint)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, best_and_last_checkpoints
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN

MONITOR = "val/robust_acc/ensemble"


def test_best_is_chosen_on_the_evaluated_epochs_and_last_is_written_every_epoch(tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    data = DigitsDataModule(batch_size=64)
    module = Standard(backbone=SmallCNN(10, 1, width=8, hidden=16), mean=data.mean, std=data.std)
    evaluation = AdversarialEvaluation(
        [AttackSpec(name="fgsm", eps=0.05)], num_examples=64, batch_size=32, every_n_epochs=2, print_table=False
    )
    best, last = best_and_last_checkpoints(MONITOR, evaluation.every_n_epochs)
    evaluated: dict[int, float] = {}  # epoch -> robust accuracy of that epoch's evaluation
    decided: list[tuple[int, float]] = []  # (epoch, monitored value) whenever best.ckpt was considered
    last_epochs: list[int] = []  # the epoch stored in last.ckpt when the next epoch starts

    original = type(best).check_monitor_top_k

    def spy(self, trainer: pl.Trainer, current: Tensor | None = None) -> bool:  # noqa: ANN001
        decided.append((trainer.current_epoch, float(current)))
        return original(self, trainer, current)

    monkeypatch.setattr(type(best), "check_monitor_top_k", spy)

    class Spy(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            path = tmp_path / "checkpoints" / "last.ckpt"
            if path.exists():
                last_epochs.append(torch.load(path, weights_only=False)["epoch"])

        def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            result = evaluation.results.get("val", {})
            if not trainer.sanity_checking and result.get("epoch") == trainer.current_epoch:
                evaluated[trainer.current_epoch] = result["attacks"]["ensemble"]["robust_acc"]

    trainer = pl.Trainer(
        max_epochs=4,
        limit_train_batches=3,
        limit_val_batches=1,
        callbacks=[evaluation, best, last, Spy()],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        logger=False,
    )
    trainer.fit(module, data)  # a plain ModelCheckpoint(monitor=MONITOR) raises at epoch 0 (metric missing)
    folder = Path(best.dirpath)
    assert trainer.checkpoint_callback is best and folder == tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert last_epochs == [0, 1, 2] and torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 3
    assert sorted(evaluated) == [1, 3]  # every 2 epochs; 3 is also the last
    # considered exactly on the evaluated epochs, with that epoch's fresh value (never a stale one)
    assert decided == [(epoch, evaluated[epoch]) for epoch in (1, 3)]
    best_epoch = max(evaluated, key=lambda epoch: (evaluated[epoch], -epoch))  # ties keep the earlier one
    assert torch.load(folder / "best.ckpt", weights_only=False)["epoch"] == best_epoch
    assert best.best_model_score.item() == evaluated[best_epoch]
