"""robustlit's default checkpointing, from public ``ModelCheckpoint`` options only.

Two Lightning ``ModelCheckpoint`` callbacks: ``best.ckpt`` by a monitored metric, checked every
``every_n_epochs`` epochs (the schedule of an evaluation that logs the metric only on some epochs: Lightning
raises when a monitored metric is missing on an epoch it checks), and ``last.ckpt`` written at the end of
every epoch whatever the monitor, so that a run can always be resumed (``--ckpt_path .../last.ckpt``).
"""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import ModelCheckpoint


def best_and_last_checkpoints(monitor: str | None, every_n_epochs: PositiveInt = 1) -> list[ModelCheckpoint]:
    """``[best, last]``: ``best.ckpt`` maximising ``monitor`` (the latest epoch when ``None``), checked every
    ``every_n_epochs`` epochs, then ``last.ckpt`` every epoch. The best one comes first: it is the Trainer's
    ``checkpoint_callback`` (what ``ckpt_path="best"`` uses)."""
    best = ModelCheckpoint(monitor=monitor, mode="max", filename="best", every_n_epochs=every_n_epochs)
    last = ModelCheckpoint(monitor=None, filename="last", every_n_epochs=1, save_top_k=1, enable_version_counter=False)
    return [best, last]


__all__ = ["best_and_last_checkpoints"]
