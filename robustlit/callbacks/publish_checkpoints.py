"""Checkpoints are published only after the metrics of their epoch are logged and flushed (docs/faults.md).

Lightning 2.6 ends a training epoch in this order: the callbacks' ``on_train_epoch_end`` (``ModelCheckpoint``
writes ``last.ckpt`` there), then the epoch's ``train/*`` metrics are sent to the loggers. A job killed between
the two left a ``last.ckpt`` of an epoch whose ``train/loss`` never reached TensorBoard, and the resumed run,
starting after that epoch, never logged it either (seen in 1 of 2 tries). With :class:`AtomicCheckpointIO` (the
CLI's default), this callback holds the checkpoints written during ``fit`` as temporary files and renames them
onto their names at the next point where everything before them is logged: the start of the next training
batch or epoch, and the end of training, after flushing every logger. A kill before that leaves the previous
checkpoint in place, so the resumed run trains (and logs) the epoch again; a run that fails discards them.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from robustlit.utils.checkpoint_io import AtomicCheckpointIO


def _atomic_io(trainer: pl.Trainer) -> AtomicCheckpointIO | None:
    io = getattr(trainer.strategy, "checkpoint_io", None)
    io = getattr(io, "checkpoint_io", io)  # unwrap Lightning's wrapping plugins (e.g. AsyncCheckpointIO)
    return io if isinstance(io, AtomicCheckpointIO) else None


class PublishCheckpointsAfterLogs(Callback):
    """Publish the checkpoints written during ``fit`` once the loggers hold every metric logged before them."""

    def _publish(self, trainer: pl.Trainer) -> None:
        io = _atomic_io(trainer)
        if io is None or not io.pending:
            return
        for logger in trainer.loggers:
            logger.save()  # TensorBoard: flush the event file
        io.publish()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        io = _atomic_io(trainer)
        if io is not None:
            io.hold(True)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._publish(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._publish(trainer)  # a checkpoint of a step or of a validation within the epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._publish(trainer)
        io = _atomic_io(trainer)
        if io is not None:
            io.hold(False)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        io = _atomic_io(trainer)
        if io is not None:
            io.discard()
            io.hold(False)


__all__ = ["PublishCheckpointsAfterLogs"]
