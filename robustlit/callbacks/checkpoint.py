"""Checkpointing on a robust-accuracy metric that is only computed on some epochs."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class RobustCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that skips its top-k update on epochs where the monitored metric was not
    logged (e.g. adversarial evaluation runs every N epochs), instead of raising; ``last.ckpt`` is
    still written every epoch, so a run can always be resumed."""

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        if self.monitor is not None and self.monitor not in monitor_candidates:
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)
