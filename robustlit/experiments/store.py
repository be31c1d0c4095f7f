"""A JSON file of finished (seed, method) runs, rewritten atomically after each one, so a long comparison that is
stopped resumes where it was (docs/faults.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from robustlit.utils.atomic import write_text_atomically


class RunStore:
    """``runs[seed][method] = row`` kept in ``path`` together with the settings that produced them.

    A file written with other settings (compared as JSON) is not reused: the comparison starts over and the
    file is replaced at the first finished run. An unreadable file is reported and ignored the same way.

    Args:
        path: the JSON file (``None``: keep runs in memory only).
        settings: JSON-serialisable settings of the comparison (epochs, eps, subset sizes, ...).
    """

    def __init__(self, path: Path | None, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = json.loads(json.dumps(settings))
        self.runs: dict[int, dict[str, dict]] = {}
        self.extra: dict[str, Any] = {}
        if path is None or not path.is_file():
            return
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            print(f"{path}: unreadable ({error}); starting from scratch", file=sys.stderr)
            return
        if stored.get("settings") != self.settings:
            print(f"{path} holds runs with other settings; not reused (it is replaced)", file=sys.stderr)
            return
        self.runs = {int(seed): rows for seed, rows in stored.get("runs", {}).items()}
        self.extra = stored.get("extra", {})

    def get(self, seed: int, method: str) -> dict | None:
        """The finished row of (seed, method), or None."""
        return self.runs.get(seed, {}).get(method)

    def put(self, seed: int, method: str, row: dict) -> None:
        """Record a finished run and rewrite the file."""
        self.runs.setdefault(seed, {})[method] = row
        self.write()

    def write(self, **more: Any) -> None:
        """Rewrite the file (atomically) with the settings, the runs, ``extra`` and any ``more`` top-level keys."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"settings": self.settings, "runs": self.runs, "extra": self.extra, **more}
        write_text_atomically(self.path, json.dumps(data, indent=2))
