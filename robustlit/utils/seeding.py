"""Training randomness that is a function of (seed, epoch, batch): a run resumed from a checkpoint draws the
same random numbers in its remaining batches as the uninterrupted run.

Lightning restores weights, optimizer and loop state from a checkpoint but not torch's global random
number generator, from which dropout and the training attacks' random starts draw (Madry et al., 2018,
§3: PGD from a random start). :class:`BatchSeed` re-seeds it before every training batch from
``(seed, epoch, batch index, rank)``, so the randomness of a batch no longer depends on how many numbers
earlier batches (or a sanity check, a validation, or a previous process) consumed. It seeds per batch,
not per epoch, because other draws happen between ``on_train_epoch_start`` and the first batch, and
not identically in a resumed run: e.g. a DataLoader iterator draws its base seed from the global
stream when it is created, which for the first epoch after a resume happens *before* that hook.
See ``docs/faults.md``.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from integers (e.g. seed, epoch, rank); equal parts give equal seeds."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), NumPy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class BatchSeed(Callback):
    """Seed the global RNGs from ``(seed, epoch, batch index, global rank)`` before every training batch.

    Args:
        seed: base seed; ``None`` reads the run's ``seed_everything`` value (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def base_seed(self) -> int:
        """The configured seed, else the run's ``seed_everything`` value, else 0."""
        if self.seed is not None:
            return self.seed
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_all(mix_seed(self.base_seed(), trainer.current_epoch, batch_idx, trainer.global_rank))


__all__ = ["BatchSeed", "mix_seed", "seed_all"]
