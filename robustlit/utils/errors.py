"""Errors that name the input they are about, and "did you mean" for mistyped names.

A :class:`FieldError` is what the command line prints as one line, ``error: <field>: <reason>``, with exit
status 2 (bad input; docs/faults.md). Code that builds a model, a data module or an evaluation from what the
user wrote raises it with the field the user can correct (``source.path``, ``--eps``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["FieldError", "did_you_mean", "one_line"]


class FieldError(ValueError):
    """Bad input in one field: ``str(error)`` is ``<field>: <reason>``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def did_you_mean(name: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'pgd'?)`` for the closest of ``choices`` to a mistyped ``name``; ``""`` when none is close.
    Case is ignored in the comparison."""
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=cutoff)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def one_line(error: BaseException, limit: int = 400) -> str:
    """An exception's message on one line: its first line, plus the first detail line when the first ends with a
    colon (``Error(s) in loading state_dict for SmallCNN: size mismatch for conv.weight ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = lines[0] + (" " + lines[1] if lines[0].endswith(":") and len(lines) > 1 else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."
