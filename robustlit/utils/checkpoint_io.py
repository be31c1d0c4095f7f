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

from robustlit.utils.atomic import atomic_target, temporary_name
from robustlit.utils.integrity import unreadable_checkpoint, verify_checkpoint


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a process-unique temporary file next to ``path``, flushed to disk, then ``os.replace``."""
    with atomic_target(path) as tmp:
        _save_synced(obj, tmp)


def _save_synced(obj: Any, path: Path) -> None:
    with path.open("wb") as stream:
        torch.save(obj, stream)
        stream.flush()
        os.fsync(stream.fileno())


def _remove_stale_temporaries(target: Path) -> None:
    """Delete held checkpoints of ``target`` left by processes that no longer run (a killed run's)."""
    for stale in target.parent.glob(f".{target.name}.*-*.tmp"):
        pid = stale.name[len(target.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temporary file in the same folder, then
    ``os.replace``) and whose loads turn an unreadable file into a :class:`CheckpointError` naming it.
    Added by robustlit's CLI unless the config sets its own ``CheckpointIO`` plugin.

    While :meth:`hold` is on, a save writes (and fsyncs) the temporary file but does not rename it: the
    checkpoint is *published* by :meth:`publish`, which :class:`~robustlit.callbacks.PublishCheckpointsAfterLogs`
    calls once the epoch's metrics are logged and the loggers flushed. Lightning writes ``last.ckpt`` at the end of
    a training epoch before it logs that epoch's ``train/*`` metrics; a kill in between left a checkpoint whose
    epoch a resumed run would never log again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held = False
        self._pending: dict[Path, Path] = {}  # checkpoint path -> its written, unpublished temporary file

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if not self._held:
            atomic_torch_save(checkpoint, path)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(target)
        try:
            _save_synced(checkpoint, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        previous = self._pending.pop(target, None)
        if previous is not None:
            previous.unlink(missing_ok=True)
        self._pending[target] = tmp
        _remove_stale_temporaries(target)

    @property
    def pending(self) -> list[Path]:
        """Checkpoints written but not yet published."""
        return list(self._pending)

    def hold(self, on: bool) -> None:
        """Keep new checkpoints unpublished (``True``) until :meth:`publish`, or write them at once (``False``)."""
        self._held = on

    def publish(self) -> list[Path]:
        """Rename every held checkpoint onto its path (atomic per file); returns the paths."""
        published = []
        for target, tmp in list(self._pending.items()):
            os.replace(tmp, target)
            published.append(target)
            del self._pending[target]
        return published

    def discard(self) -> None:
        """Delete the held checkpoints (a run that failed before their epoch was logged)."""
        for tmp in self._pending.values():
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def remove_checkpoint(self, path: Any) -> None:
        held = self._pending.pop(Path(path), None) if "://" not in str(path) else None
        if held is not None:
            held.unlink(missing_ok=True)
        super().remove_checkpoint(path)

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
