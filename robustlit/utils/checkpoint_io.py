"""Checkpoint files written atomically and read with a clear error (docs/faults.md).

Lightning 2.6's ``TorchCheckpointIO`` saves through an fsspec transaction whose temporary file lies in the
system temp folder (``tempfile.mkstemp``) and is then moved with ``shutil.move``: when that folder is on
another file system than the run (a node-local ``/tmp`` and a shared run folder, the usual cluster
layout) the move is a copy, and a job killed during it leaves a truncated ``last.ckpt``.
:class:`AtomicCheckpointIO` writes a temporary file in the checkpoint's own folder (a name unique to the
process) and renames it with ``os.replace``, which is atomic on POSIX: ``last.ckpt`` is always either the
previous complete file or the new complete file.

Reading: a file torch cannot read (random bytes, a truncated write by another tool) is reported as
corrupt, naming the file, instead of passing on torch's hint to retry with ``weights_only=False`` (which
would unpickle whatever the file holds); a file that reads but fails its stored checksums (weights, optimizer,
schedulers, loops, callbacks: :mod:`robustlit.utils.integrity`) is refused, naming the entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from robustlit.utils.atomic import atomic_target
from robustlit.utils.integrity import unreadable_checkpoint, verify_checkpoint


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a process-unique temporary file next to ``path``, flushed to disk, then ``os.replace``."""
    with atomic_target(path) as tmp, tmp.open("wb") as stream:
        torch.save(obj, stream)
        stream.flush()
        os.fsync(stream.fileno())


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temporary file in the same folder, then
    ``os.replace``) and whose loads turn an unreadable file into a :class:`CheckpointError` naming it.
    Added by robustlit's CLI unless the config sets its own ``CheckpointIO`` plugin."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path) or not Path(path).is_file():
            return super().load_checkpoint(path, map_location, weights_only)
        try:
            checkpoint = super().load_checkpoint(path, map_location, weights_only)
        except Exception as error:  # noqa: BLE001 - torch raises several types for unreadable files
            raise unreadable_checkpoint(path, error) from None
        if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
            verify_checkpoint(checkpoint, path)  # weights and training state, before Lightning restores anything
        return checkpoint


__all__ = ["AtomicCheckpointIO", "atomic_torch_save"]
