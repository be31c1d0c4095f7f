"""The typed result of :func:`robustlit.evaluate`: the numbers, their table, their files."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustlit.attacks.eps import Eps
from robustlit.results.robustbench_format import model_info, write_model_info
from robustlit.results.run_dir import ADVERSARIAL_JSON
from robustlit.utils.atomic import write_text_atomically


@dataclass(frozen=True)
class EvaluationResult:
    """Clean and robust accuracy of one model on the first ``n_examples`` test examples (each counted once).

    Attributes:
        model, architecture, dataset: labels (used by tables, leaderboards and the RobustBench file).
        threat_model, eps: the norm and the radius as written (``Eps('8/255')``).
        n_examples: examples evaluated; ``dataset_size``: examples in the split.
        clean_acc: clean accuracy on those examples.
        robust_acc: per attack (robustlit's metric name, e.g. ``autoattack_linf_8/255``), the robust accuracy.
        worst_case: per example, robust against *every* attack (the number to report when several ran).
        unreliable: the attacks whose number the attack-failure audit flagged (docs/audit.md).
        summary: the full summary (per-class accuracies, audit reports), as ``adversarial_evaluation_test.json``.
    """

    model: str
    architecture: str
    dataset: str
    threat_model: str
    eps: Eps
    n_examples: int
    dataset_size: int
    clean_acc: float
    robust_acc: dict[str, float]
    worst_case: float
    unreliable: tuple[str, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def autoattack_acc(self) -> float | None:
        """Standard AutoAttack's robust accuracy, when it ran."""
        found = [n for n, r in self.summary.get("attacks", {}).items() if r["spec"].get("name") == "autoattack"]
        return self.robust_acc[found[0]] if len(found) == 1 else None

    @property
    def headline(self) -> float:
        """The number to report: the per-example worst case over every attack run (AutoAttack's own number when
        it is the only attack)."""
        return self.worst_case

    def table(self, width: int = 120) -> str:
        """The table robustlit prints after an evaluation, as plain text."""
        from rich.console import Console

        from robustlit.callbacks.summary_table import print_robustness_table

        console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
        title = f"{self.model} on {self.dataset}: adversarial evaluation"
        print_robustness_table(self.summary, title=title, console=console)
        return console.file.getvalue()  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self.table()

    def print(self) -> None:
        """Print :meth:`table`."""
        print(self.table(), end="")

    def save(self, out_dir: str | Path) -> Path:
        """Write ``adversarial_evaluation_test.json`` into ``out_dir`` (a folder ``python -m robustlit.results
        leaderboard`` reads like a run folder); returns the file."""
        path = Path(out_dir) / ADVERSARIAL_JSON.format(stage="test")
        write_text_atomically(path, json.dumps(self.summary, indent=2) + "\n")
        return path

    def robustbench_info(self, **fields: Any) -> dict[str, Any]:
        """RobustBench's model-info dictionary (:func:`robustlit.results.model_info`); ``fields``: ``name`` (the
        paper's title), ``link``, ``authors``, ``venue``, ``reported`` (the paper's own number),
        ``additional_data``, ``footnote``, ..."""
        fields.setdefault("dataset", self.dataset)
        fields.setdefault("architecture", self.architecture)
        return model_info(self.summary, **fields)

    def write_robustbench(self, out_dir: str | Path, model_id: str, **fields: Any) -> Path:
        """Write ``<out_dir>/<model_id>.json`` in RobustBench's format (and ``<model_id>.robustlit.json`` beside it);
        warns when fewer examples than RobustBench's protocol were evaluated."""
        fields.setdefault("dataset", self.dataset)
        fields.setdefault("architecture", self.architecture)
        return write_model_info(self.summary, out_dir, model_id, **fields)
