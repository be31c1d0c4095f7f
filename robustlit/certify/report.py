"""Certified-accuracy summaries and the per-example TSV log of Cohen et al.'s ``certify.py``.

Certified accuracy at r (docs/smoothing.md) = fraction of examples whose prediction is correct and whose
certified radius is >= r; abstentions (predict -1) count as wrong. The log has one row per example,
header ``idx label predict radius correct time`` (tab separated, time as ``str(datetime.timedelta)``),
written and flushed row by row so that an interrupted run keeps its finished rows and can resume.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from robustlit.utils.file_digest import digest_path, verified_length, write_digest

__all__ = [
    "TSV_HEADER",
    "CertificationRow",
    "CertificationWriter",
    "average_certified_radius",
    "certified_accuracy",
    "read_rows",
    "remove_log",
    "verify_log",
]

TSV_HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime"
_COLUMNS = TSV_HEADER.split("\t")


def certified_accuracy(
    radii: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, thresholds: Iterable[float]
) -> list[float]:
    """Fraction of examples with ``correct and radius >= r`` for each threshold r (Cohen et al. 2019).

    ``correct`` must be 0 for abstentions (as in the log, where predict = -1 never equals the label).
    """
    r, c = _as_arrays(radii, correct)
    return [float(np.mean(c & (r >= t))) for t in thresholds]


def average_certified_radius(radii: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray) -> float:
    """ACR: mean over all examples of ``radius * correct`` (wrong and abstained examples count 0)."""
    r, c = _as_arrays(radii, correct)
    return float(np.mean(np.where(c, r, 0.0)))


@dataclass(frozen=True)
class CertificationRow:
    """One example of the certification log; ``predict == -1`` is an abstention, ``time`` in seconds."""

    idx: int
    label: int
    predict: int
    radius: float
    correct: int
    time: float

    def to_line(self) -> str:
        """The TSV line (no newline). The radius is rounded down to 6 decimals, never up."""
        radius = self.radius if math.isinf(self.radius) else math.floor(self.radius * 1e6) / 1e6
        elapsed = str(datetime.timedelta(seconds=float(self.time)))
        return f"{self.idx}\t{self.label}\t{self.predict}\t{radius:.6f}\t{int(self.correct)}\t{elapsed}"

    @classmethod
    def from_line(cls, line: str) -> CertificationRow:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != len(_COLUMNS):
            raise ValueError(f"expected {len(_COLUMNS)} tab-separated fields ({TSV_HEADER!r}), got {line!r}")
        idx, label, predict, radius, correct, elapsed = fields
        return cls(int(idx), int(label), int(predict), float(radius), int(correct), _parse_seconds(elapsed))


def read_rows(path: str | os.PathLike[str]) -> dict[int, CertificationRow]:
    """Rows of a certification log keyed by idx (a later row for the same idx wins).

    A last line without a trailing newline is an interrupted write and is ignored; any other malformed
    line, or a wrong header, raises ValueError.
    """
    text = Path(path).read_text()
    lines = text.split("\n")
    complete = lines[:-1]  # the piece after the last newline is '' or a truncated row
    while complete and complete[0].startswith("#"):  # a preamble (e.g. the bf16 note) precedes the header
        complete = complete[1:]
    if not complete:
        return {}
    if complete[0].rstrip("\r") != TSV_HEADER:
        raise ValueError(f"{path}: first line is {complete[0]!r}, expected the header {TSV_HEADER!r}")
    rows: dict[int, CertificationRow] = {}
    for number, line in enumerate(complete[1:], start=2):
        if not line.strip():
            continue
        try:
            row = CertificationRow.from_line(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}") from err
        rows[row.idx] = row
    return rows


class CertificationWriter:
    """Append-only TSV log; each ``append_row`` is flushed (and fsynced) at once, then the SHA-256 of the file so far
    is recorded beside it (``<file>.sha256``, :mod:`robustlit.utils.file_digest`), so that a reader can tell a
    file that was changed or cut after it was written (:func:`verify_log`).

    Opening an existing log (``resume=True``) keeps its complete rows, drops a truncated last line and
    exposes the finished indices as ``finished`` so the caller can skip them; ``resume=False`` starts
    a new file. ``preamble`` lines are written as ``# ...`` comments before the header of a new file
    (used to state that the certificates are for a bfloat16 classifier); :func:`read_rows` skips them.
    The default is no preamble: the file is then exactly Cohen et al.'s format. ``digest=False`` writes no
    checksum (a temporary file whose checksum the caller records under the final name).
    """

    def __init__(
        self, path: str | os.PathLike[str], resume: bool = True, preamble: Sequence[str] = (), digest: bool = True
    ) -> None:
        self.path = Path(path)
        self.finished: dict[int, CertificationRow] = {}
        self._preamble = [f"# {line}" for line in preamble]
        self._digest, self._size, self._record_digest = hashlib.sha256(), 0, digest
        if resume and self.path.exists():
            self.finished = read_rows(self.path)  # checks the header before anything is changed
            self._drop_truncated_tail()
            existing = self.path.read_bytes()
            self._digest.update(existing)
            self._size = len(existing)
            self._file = self.path.open("a")
            if self._size == 0:
                self._write_header()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w")
            self._write_header()

    def _write_header(self) -> None:
        for line in self._preamble:
            self._write(line)
        self._write(TSV_HEADER)

    def append_row(self, row: CertificationRow) -> None:
        """Write one row and flush it to disk."""
        self._write(row.to_line())
        self.finished[row.idx] = row

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CertificationWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, line: str) -> None:
        data = (line + "\n").encode()
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._digest.update(data)
        self._size += len(data)
        if self._record_digest:
            write_digest(self.path, self._digest.hexdigest(), self._size)

    def _drop_truncated_tail(self) -> None:
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        with self.path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def verify_log(path: str | os.PathLike[str], owner: str = "Certification") -> bool:
    """Keep the part of a certification log its checksum covers; delete a log that fails it (or has none), saying
    so, and return False. Rows after the last recorded checksum (a kill between the two writes) are dropped."""
    path = Path(path)
    if not path.exists():
        return True
    size, why = verified_length(path)
    if size is None:
        print(f"{owner}: {path} is discarded ({why}); its examples are certified again.", flush=True)
        path.unlink(missing_ok=True)
        digest_path(path).unlink(missing_ok=True)
        return False
    if path.stat().st_size > size:
        with path.open("r+b") as f:
            f.truncate(size)
    return True


def remove_log(path: str | os.PathLike[str]) -> None:
    """Delete a log and its checksum file."""
    Path(path).unlink(missing_ok=True)
    digest_path(path).unlink(missing_ok=True)


_TIMEDELTA = re.compile(r"^(?:(-?\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _parse_seconds(text: str) -> float:
    """Seconds from ``str(datetime.timedelta)`` (``[D day[s], ]H:MM:SS[.ffffff]``) or a plain number."""
    match = _TIMEDELTA.match(text.strip())
    if match is None:
        return float(text)
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _as_arrays(
    radii: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    c = np.asarray(correct).reshape(-1).astype(bool)
    if r.shape != c.shape:
        raise ValueError(f"radii and correct differ in length: {r.size} vs {c.size}")
    if r.size == 0:
        raise ValueError("no examples")
    return r, c
