"""Files of the per-batch evaluation cache: written atomically with a checksum, never used unverified
(docs/evaluation.md, "Caching and resuming"; docs/faults.md).

A cached batch is ``{"columns": {name: tensor}, "sha256": <checksum of the columns>}``. A file that cannot be
read (truncated by a full disk or a copy that did not finish), that fails its checksum (changed bytes: a reused
file once turned a true AutoAttack robust accuracy of 16.67 % into 30.21 %), or that predates the checksum is
named, deleted and computed again; it is never scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustlit.utils.atomic import atomic_target
from robustlit.utils.integrity import weights_checksum


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file unique to this process in the same folder, then ``os.replace``
    (:func:`~robustlit.utils.atomic.atomic_target`): concurrent writers of the same file never clash, readers
    see whole files. No fsync: a per-batch cache, recomputed if a crash loses it."""
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def write_batch(columns: dict[str, Tensor], path: Path) -> None:
    """Store one finished batch's columns with their SHA-256."""
    atomic_save({"columns": columns, "sha256": weights_checksum(columns)}, path)


def read_batch(path: Path, owner: str = "evaluation") -> dict[str, Tensor] | None:
    """The columns stored in ``path``, or None after deleting a file that is unreadable, fails its checksum or
    has none (a message names it and says that the batch is computed again)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        columns, checksum = stored["columns"], stored["sha256"]
        problem = None if weights_checksum(columns) == checksum else "its content does not match its SHA-256"
    except Exception as error:  # noqa: BLE001 - torch raises several types for truncated or foreign files
        first_line = (str(error).splitlines() or [""])[0][:80]
        problem = f"it cannot be read as a cached batch ({type(error).__name__}: {first_line})"
    if problem is None:
        return columns
    print(f"{owner}: cache file {path} is discarded, {problem}; the batch is computed again.", flush=True)
    path.unlink(missing_ok=True)
    return None


__all__ = ["atomic_save", "read_batch", "write_batch"]
