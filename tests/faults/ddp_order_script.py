"""Fit a tiny model with N CPU processes (gloo DDP) and dump, per rank and epoch, the training examples it
saw, in order. Called by test_ddp_order.py as a subprocess (Lightning's DDP launcher re-executes it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import TensorDataset

from robustlit.data.base import RobustDataModule

SIZE = 40


class Numbered(RobustDataModule):
    """Example i is the single feature i (label 0)."""

    bounds = None

    def setup(self, stage: str | None = None) -> None:
        data = TensorDataset(torch.arange(SIZE, dtype=torch.float32).view(-1, 1), torch.zeros(SIZE, dtype=torch.long))
        self.train_dataset = self.val_dataset = self.test_dataset = data


class Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 2)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).extend(batch[0].view(-1).long().tolist())
        return self.layer(batch[0]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def main(devices: int, out: str) -> None:
    torch.set_num_threads(1)
    module = Recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, Numbered(batch_size=4, seed=5))
    Path(f"{out}.rank{trainer.global_rank}").write_text(json.dumps(module.seen))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
