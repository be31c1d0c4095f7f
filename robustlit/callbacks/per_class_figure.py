"""Per-class robust accuracy as a grouped bar chart (one group per class, one bar per attack)."""

from __future__ import annotations

from matplotlib.figure import Figure


def per_class_figure(per_class: dict[str, list[float]], title: str) -> Figure:
    """``per_class``: ``{attack metric name: [accuracy of class 0, 1, ...]}`` (NaN for absent classes)."""
    figure = Figure(figsize=(max(6.0, 0.6 * len(next(iter(per_class.values()), []))), 3.5))
    axes = figure.subplots()
    names = list(per_class)
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        values = [0.0 if v != v else v for v in per_class[name]]
        axes.bar([k + (j - (len(names) - 1) / 2) * width for k in range(len(values))], values, width, label=name)
    axes.set_xlabel("class")
    axes.set_ylabel("robust accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure
