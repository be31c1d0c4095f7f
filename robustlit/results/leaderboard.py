"""Several runs' test-stage robustness summaries gathered into one markdown table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustlit.results.labels import architecture_label, dataset_label, method_label
from robustlit.results.run_dir import read_adversarial_summary, read_config


def run_label(run_dir: Path) -> str:
    """``<logger name>/<version>`` for Lightning's ``runs/<name>/version_<k>`` folders."""
    run_dir = run_dir.resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"


def leaderboard_rows(run_dirs: list[str | Path]) -> list[dict[str, Any]]:
    """One row per run: labels, number of examples, clean accuracy and every attack's robust accuracy,
    sorted by the ensemble (every attack at once) robust accuracy, best first."""
    rows = []
    for run_dir in map(Path, run_dirs):
        summary = read_adversarial_summary(run_dir, "test")
        if summary is None:
            raise FileNotFoundError(f"{run_dir} has no adversarial_evaluation_test.json; run `robustlit test` first")
        config = read_config(run_dir)
        rows.append(
            {
                "run": run_label(run_dir),
                "method": method_label(config),
                "architecture": architecture_label(config),
                "dataset": dataset_label(config),
                "num_examples": summary["num_examples"],
                "clean_acc": summary["clean_acc"],
                "robust_acc": {name: res["robust_acc"] for name, res in summary.get("attacks", {}).items()},
            }
        )
    return sorted(rows, key=lambda r: -min(r["robust_acc"].values(), default=r["clean_acc"]))


def leaderboard_markdown(run_dirs: list[str | Path]) -> str:
    """A markdown table of :func:`leaderboard_rows`; an attack a run did not use shows as ``-``.

    Columns are named by robustlit's metric names (attack, steps, norm, eps), so a number is only
    compared with the same attack; ``ensemble`` counts an example robust only if every attack of
    that run failed on it.
    """
    rows = leaderboard_rows(run_dirs)
    attacks = sorted({name for row in rows for name in row["robust_acc"]} - {"ensemble"})
    if any("ensemble" in row["robust_acc"] for row in rows):
        attacks.append("ensemble")
    header = ["#", "run", "method", "architecture", "dataset", "examples", "clean", *attacks]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", *["---"] * 4, *["---:"] * (len(header) - 5)]) + "|",
    ]
    for rank, row in enumerate(rows, start=1):
        cells = [str(rank), row["run"], row["method"], row["architecture"], row["dataset"], str(row["num_examples"])]
        cells.append(f"{100 * row['clean_acc']:.2f}")
        cells += [f"{100 * row['robust_acc'][a]:.2f}" if a in row["robust_acc"] else "-" for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Accuracies in % on the test split (each example counted once); sorted by the lowest robust accuracy.")
    return "\n".join(lines) + "\n"
