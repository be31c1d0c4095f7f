"""Presentation of a certification summary: the rich table and the certified-accuracy-vs-radius figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from robustlit.callbacks.evaluation import pct as _pct
from robustlit.certify.report import certified_accuracy


def settings_line(settings: dict[str, Any]) -> str:
    """``sigma=..., n0=..., n=..., failure_prob=..., <radius> radius``."""
    return (
        f"{settings['sigma']}, n0={settings['n0']}, n={settings['n']}, failure_prob={settings['failure_prob']:g}, "
        f"{settings['radius']} radius"
    )


def print_certification_table(summary: dict[str, Any], title: str, console: Console | None = None) -> None:
    """One row per radius (certified accuracy), then the average certified radius and the abstain rate."""
    table = Table(title=f"{title} ({summary['num_examples']} examples)\n{settings_line(summary['settings'])}")
    table.add_column("l2 radius (pixels)", justify="right")
    table.add_column("certified accuracy", justify="right")
    for radius, acc in summary["certified_acc"].items():
        table.add_row(f"{float(radius):g}", _pct(acc))
    table.add_row("average certified radius", f"{summary['average_certified_radius']:.4f}", style="bold")
    table.add_row("abstain rate", _pct(summary["abstain_rate"]))
    if "file" in summary:
        table.caption = f"per-example rows: {summary['file']}"
    (console or Console()).print(table)


def certified_accuracy_figure(
    radius: Sequence[float], correct: Sequence[bool], settings: dict[str, Any], points: int = 400
) -> Figure:
    """Certified accuracy as a function of the l2 radius (a step curve, Cohen et al. 2019 Fig. 6 style)."""
    r = np.asarray(radius, dtype=np.float64)
    finite = r[np.isfinite(r)]
    top = max(float(finite.max()) if finite.size else 0.0, 1e-3) * 1.1
    grid = np.linspace(0.0, top, points)
    curve = certified_accuracy(r, correct, grid)
    figure = Figure(figsize=(5.5, 3.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(grid, curve, drawstyle="steps-post")
    axes.set_xlabel("l2 radius (pixel units)")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlim(0.0, top)
    axes.grid(alpha=0.3)
    axes.set_title(settings_line(settings), fontsize=8)
    return figure
