"""robustlit's default checkpointing: ``best.ckpt`` by a metric logged only on some epochs, ``last.ckpt`` always.

Lightning 2.6's ``ModelCheckpoint`` raises when its monitored metric is missing after a validation loop, keeps
an earlier epoch's value in ``trainer.callback_metrics`` on epochs that do not log it, and writes ``last.ckpt``
(``save_last``) only on epochs where it saved a top-k checkpoint. An evaluation such as
:class:`~robustlit.callbacks.AdversarialEvaluation` logs ``val/robust_acc/ensemble`` every ``every_n_epochs``
epochs and at the last epoch, so robustlit uses two callbacks built on the public API: :class:`BestCheckpoint`
(a ``ModelCheckpoint`` whose public ``on_validation_end`` hook considers exactly the epochs the evaluation
runs) and a plain ``ModelCheckpoint`` that writes ``last.ckpt`` at the end of every training epoch (after
that epoch's validation, if any; also on epochs without validation), so that a run can always be resumed
(``--ckpt_path .../last.ckpt``).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import ModelCheckpoint

from robustlit.callbacks.evaluation import scheduled


class BestCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that decides after validation, on the epochs of an evaluation schedule only.

    Args:
        evaluation_every_n_epochs: the ``every_n_epochs`` of the evaluation that logs ``monitor``: the
            checkpoint is considered on its multiples and at the last epoch, exactly when it is logged.
        **kwargs: any ``ModelCheckpoint`` argument (``save_on_train_epoch_end`` is fixed to ``False``).
    """

    def __init__(self, evaluation_every_n_epochs: PositiveInt = 1, **kwargs: Any) -> None:
        kwargs["save_on_train_epoch_end"] = False
        super().__init__(**kwargs)
        self.evaluation_every_n_epochs = evaluation_every_n_epochs

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if scheduled(trainer, self.evaluation_every_n_epochs):
            super().on_validation_end(trainer, pl_module)


def best_and_last_checkpoints(monitor: str | None, evaluation_every_n_epochs: int = 1) -> list[ModelCheckpoint]:
    """``[best, last]``: ``best.ckpt`` maximising ``monitor`` (the latest epoch when ``None``) over the epochs
    of an evaluation run every ``evaluation_every_n_epochs`` epochs, then ``last.ckpt`` every epoch. The best
    one comes first: it is the Trainer's ``checkpoint_callback`` (what ``ckpt_path="best"`` uses)."""
    best = BestCheckpoint(evaluation_every_n_epochs, monitor=monitor, mode="max", filename="best")
    last = ModelCheckpoint(
        monitor=None, filename="last", save_top_k=1, save_on_train_epoch_end=True, enable_version_counter=False
    )
    return [best, last]


__all__ = ["BestCheckpoint", "best_and_last_checkpoints"]
