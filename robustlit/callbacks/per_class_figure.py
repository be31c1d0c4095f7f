"""Per-class robust accuracy as a grouped bar chart: one group per class, the clean bar first, then one bar per attack.

Every class is labelled on the x axis with its number of evaluated examples (``n=27``), so a class that the
first ``num_examples`` barely cover is visible; an attack whose number the attack-failure audit flagged is
hatched and marked UNRELIABLE in the legend (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

CLEAN = "clean"


def per_class_figure(
    per_class: dict[str, list[float]],
    title: str,
    clean: Sequence[float] | None = None,
    counts: Sequence[int] | None = None,
    unreliable: Sequence[str] = (),
) -> Figure:
    """``per_class``: ``{attack metric name: [accuracy of class 0, 1, ...]}`` (NaN for absent classes);
    ``clean``: per-class clean accuracy; ``counts``: examples per class; ``unreliable``: flagged attacks."""
    bars = ({CLEAN: list(clean)} if clean is not None else {}) | per_class
    num_classes = len(next(iter(bars.values()), []))
    figure = Figure(figsize=(max(6.0, 0.7 * num_classes + 1.5) + 2.5, 3.8))
    axes = figure.subplots()
    width = 0.8 / max(len(bars), 1)
    for j, (name, accuracies) in enumerate(bars.items()):
        values = [0.0 if v != v else v for v in accuracies]
        flagged = name in unreliable
        label = f"{name} (UNRELIABLE)" if flagged else name
        offsets = [k + (j - (len(bars) - 1) / 2) * width for k in range(len(values))]
        style = {"color": "0.75", "edgecolor": "0.4"} if name == CLEAN else {}
        axes.bar(offsets, values, width, label=label, hatch="//" if flagged else None, **style)
    axes.set_xticks(range(num_classes))
    if counts is not None:
        axes.set_xticklabels([f"{k}\nn={n}" for k, n in enumerate(counts)], fontsize=7)
    else:
        axes.set_xticklabels([str(k) for k in range(num_classes)], fontsize=7)
    axes.set_xlabel("class (examples evaluated)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    figure.tight_layout()
    return figure
