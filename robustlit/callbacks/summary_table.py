"""The rich summary table printed at the end of fit / validate / test."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from robustlit.callbacks.evaluation import pct as _pct


def print_robustness_table(summary: dict, title: str, console: Console | None = None) -> None:
    """One row for clean accuracy, one per attack (name, norm, eps, steps, restarts), one for the ensemble."""
    table = Table(title=f"{title} ({summary['num_examples']} examples)")
    tail = f"worst {round(100 * summary.get('worst_fraction', 0.3))}% classes"
    for column in ("attack", "norm", "eps", "steps", "restarts", "accuracy", "worst class", tail):
        table.add_column(column, justify="left" if column == "attack" else "right", no_wrap=True)
    table.add_row("clean", "-", "0", "-", "-", _pct(summary["clean_acc"]), "", "")
    for name, res in summary["attacks"].items():
        spec = res["spec"]
        if name == "ensemble":
            table.add_row("all (per-example worst)", "", "", "", "", *_accs(res), style="bold")
            continue
        steps = "std" if spec["name"] == "autoattack" else str(1 if spec["name"] == "fgsm" else spec["steps"])
        restarts = "std" if spec["name"] == "autoattack" else str(spec["restarts"])
        table.add_row(spec["name"], spec["norm"], f"{spec['eps']:.4g}", steps, restarts, *_accs(res))
    if console is None:
        console = Console()
        console.width = max(console.width, 120)
    console.print(table)


def _accs(res: dict) -> tuple[str, str, str]:
    return (
        _pct(res["robust_acc"]),
        _pct(res["worst_class_robust_acc"]),
        _pct(res["worst_fraction_robust_acc"]),
    )
