"""Files replaced atomically: written under a process-unique temporary name next to the target, then
``os.replace`` (atomic on POSIX). Readers see the old or the new complete file, and two processes writing
the same file never share a temporary file (docs/faults.md)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_target", "temporary_name", "write_text_atomically"]


def temporary_name(path: str | os.PathLike[str]) -> Path:
    """``.<name>.<pid>-<random>.tmp`` next to ``path``: unique to this process and this write."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends normally it replaces ``path``, and it is
    removed in every case (an interrupted write leaves ``path`` as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """``path.write_text(text)``, atomically (:func:`atomic_target`)."""
    with atomic_target(path) as tmp:
        tmp.write_text(text)
