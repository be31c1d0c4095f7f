"""A JSON file of finished (seed, method) runs, rewritten atomically after each one, so a long comparison that is
stopped resumes where it was, and several processes (one per seed) can fill the same file (docs/faults.md)."""

from __future__ import annotations

import fcntl
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robustlit.utils.atomic import write_text_atomically


class RunStore:
    """``runs[seed][method] = row`` kept in ``path`` together with the settings that produced them.

    A file written with other settings (compared as JSON) is not reused: the comparison starts over and the
    file is replaced at the first finished run. An unreadable file is reported and ignored the same way. Every
    write first merges the runs that other processes put in the file meanwhile (under an exclusive ``flock`` on
    ``<path>.lock``), so processes that run different seeds of the same settings share one file.

    Args:
        path: the JSON file (``None``: keep runs in memory only).
        settings: JSON-serialisable settings of the comparison (epochs, eps, subset sizes, ...).
    """

    def __init__(self, path: Path | None, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = json.loads(json.dumps(settings))
        self.runs: dict[int, dict[str, dict]] = {}
        self.extra: dict[str, Any] = {}
        self._read(report=True)

    def _read(self, report: bool = False) -> None:
        """Merge the runs of the file into memory (runs already in memory win)."""
        if self.path is None or not self.path.is_file():
            return
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            if report:
                print(f"{self.path}: unreadable ({error}); starting from scratch", file=sys.stderr)
            return
        if stored.get("settings") != self.settings:
            if report:
                print(f"{self.path} holds runs with other settings; not reused (it is replaced)", file=sys.stderr)
            return
        for seed, rows in stored.get("runs", {}).items():
            for method, row in rows.items():
                self.runs.setdefault(int(seed), {}).setdefault(method, row)
        self.extra = {**stored.get("extra", {}), **self.extra}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def refresh(self) -> None:
        """Read the runs other processes have added to the file since."""
        self._read()

    def get(self, seed: int, method: str) -> dict | None:
        """The finished row of (seed, method), or None."""
        return self.runs.get(seed, {}).get(method)

    def put(self, seed: int, method: str, row: dict) -> None:
        """Record a finished run and rewrite the file."""
        self.runs.setdefault(seed, {})[method] = row
        self.write()

    def write(self, **more: Any) -> None:
        """Rewrite the file (atomically, merged with what other processes wrote) with the settings, the runs, ``extra``
        and any ``more`` top-level keys."""
        if self.path is None:
            return
        with self._locked():
            self._read()
            data = {"settings": self.settings, "runs": self.runs, "extra": self.extra, **more}
            write_text_atomically(self.path, json.dumps(data, indent=2))
