"""Print where a run writes, as it starts: ``run folder: runs/digits-trades/version_3`` (rank 0, once)."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RunFolder(Callback):
    """Print the run folder (``trainer.log_dir``: TensorBoard logs, checkpoints, evaluation JSON and figures)
    when fit, validate or test starts; once per process, so ``fit`` then ``test`` prints it once."""

    def __init__(self) -> None:
        self._printed = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        folder = trainer.log_dir  # a collective under DDP: read it on every rank
        if trainer.is_global_zero and not self._printed and folder is not None:
            print(f"run folder: {folder}", flush=True)
        self._printed = True
