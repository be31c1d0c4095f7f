"""Fitting a method for a comparison: one CPU Trainer, no logger or checkpoints, the wall time returned."""

from __future__ import annotations

import logging
import time
import warnings

import lightning.pytorch as pl

from robustlit.methods.base import RobustClassifier


def quiet_lightning() -> None:
    """Silence Lightning's per-run banners and the warnings a script that builds modules in Python triggers."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(is an instance of `nn.Module`|LeafSpec|smaller than the logging).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def fit(
    module: RobustClassifier,
    datamodule: pl.LightningDataModule,
    epochs: int,
    seed: int,
    val_every_n_epochs: int = 1,
    limit_train_batches: int | float | None = None,
    validate: bool = True,
) -> float:
    """Train ``module`` for ``epochs`` epochs on the CPU, seeded; returns the wall time in seconds.

    Validation runs every ``val_every_n_epochs`` epochs (AR-AdaLS updates its smoothing there; pass a large
    number to validate only at the end; ``validate=False`` skips it). ``inference_mode=False``: AR-AdaLS attacks at
    validation.
    """
    pl.seed_everything(seed, verbose=False)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
        check_val_every_n_epoch=val_every_n_epochs,
        limit_train_batches=limit_train_batches,
        limit_val_batches=None if validate else 0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule)
    return time.perf_counter() - start
