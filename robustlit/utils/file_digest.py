"""A SHA-256 beside a file that grows by appending (the certification TSV; docs/faults.md).

``<file>.sha256`` holds ``<hex digest> <byte count>`` of the file's first ``byte count`` bytes, replaced
atomically after every append. A reader keeps the verified prefix: bytes appended after the last digest (a
kill between the two writes) are dropped, and a file whose prefix does not match (changed bytes, a truncated
copy) or that has no digest is not trusted at all.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from robustlit.utils.atomic import write_text_atomically

__all__ = ["digest_path", "verified_length", "write_digest"]


def digest_path(path: str | Path) -> Path:
    """``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_digest(path: str | Path, hex_digest: str, size: int) -> None:
    """Record that the first ``size`` bytes of ``path`` have SHA-256 ``hex_digest``."""
    write_text_atomically(digest_path(path), f"{hex_digest} {size}\n")


def verified_length(path: str | Path) -> tuple[int | None, str]:
    """``(n, "")`` when the first n bytes of ``path`` match its digest, else ``(None, why)``."""
    path, companion = Path(path), digest_path(path)
    if not companion.is_file():
        return None, f"it has no checksum file ({companion.name})"
    try:
        hex_digest, size_text = companion.read_text().split()
        size = int(size_text)
    except ValueError:
        return None, f"its checksum file {companion.name} is unreadable"
    data = path.read_bytes()
    if len(data) < size:
        return None, f"it is shorter ({len(data)} bytes) than when its checksum was written ({size} bytes)"
    if hashlib.sha256(data[:size]).hexdigest() != hex_digest:
        return None, "its content does not match its SHA-256"
    return size, ""
