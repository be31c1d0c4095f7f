"""Evaluation progress: examples done / total and the time left, as plain lines or as a rich task."""

from __future__ import annotations

import pytest
from rich.progress import Progress as RichProgress

from robustlit.callbacks.evaluation import Progress, format_seconds, rich_progress_of


def test_plain_lines_show_examples_done_and_the_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("AdversarialEvaluation", mine=100, total=100, interval=0.0)
    progress.advance(25, computed=True)
    line = capsys.readouterr().out.strip()
    assert line.startswith("AdversarialEvaluation: 25/100 examples, ")
    assert "left" in line
    eta = progress.eta()
    assert eta is not None and eta >= 0
    # examples read from a cache count as done, not in the rate
    cached = Progress("X", mine=10, total=10, interval=1e9)
    cached.advance(5, computed=False)
    assert cached.done == 5 and cached.eta() is None


def test_no_line_when_less_than_the_interval_is_left(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("AdversarialEvaluation", mine=10, total=10, interval=1e-9)
    progress.advance(10)  # done: "about 0 s left" would only lengthen a log file
    assert capsys.readouterr().out == ""


def test_a_rich_progress_gets_a_task_instead_of_lines(capsys: pytest.CaptureFixture[str]) -> None:
    rich = RichProgress()
    progress = Progress("Certification", mine=40, total=40, interval=0.0, rich=rich)
    progress.advance(10)
    task = rich.tasks[0]
    assert (task.completed, task.total, "Certification" in task.description) == (10, 40, True)
    assert capsys.readouterr().out == ""
    progress.close()
    assert rich.tasks == []


def test_no_rich_task_without_a_terminal_or_a_trainer() -> None:
    assert rich_progress_of(None) is None  # pytest captures stdout: not a terminal either


@pytest.mark.parametrize("seconds, text", [(42.4, "42 s"), (185, "3 min 05 s"), (7440, "2 h 04 min")])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
