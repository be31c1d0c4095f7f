"""A test-only callback: appends one line per finished training batch and the final metrics to files,
so that a test can kill the process at a known point and compare the metrics of two runs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, Checkpoint


class BatchMarker(Callback):
    """Append ``epoch=E batch=B lr=.. sum(w)=..`` to ``marker`` after every training batch; write
    ``trainer.callback_metrics`` to ``metrics`` (JSON) at the end of fit."""

    def __init__(self, marker: str, metrics: str) -> None:
        self.marker, self.metrics = Path(marker), Path(metrics)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        with self.marker.open("a") as stream:
            total = sum(float(p.detach().double().sum()) for p in pl_module.parameters())
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            stream.write(f"epoch={trainer.current_epoch} batch={args[-1]} lr={lr:.6g} sum(w)={total:.10g}\n")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.metrics.write_text(json.dumps(values, indent=1, sort_keys=True))


class StopAfter(Callback):
    """Stop training cleanly at the end of ``epoch`` (after its checkpoint): an interruption between epochs."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class KillAfterCheckpoint(Checkpoint):
    """SIGKILL the process at the end of training epoch ``epoch``, right after the checkpoint callbacks saved it.

    A ``Checkpoint`` subclass: Lightning runs checkpoint callbacks last (in their configured order), so this one
    runs after the ``ModelCheckpoint`` listed before it, and before the epoch's ``train/*`` metrics are logged."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
