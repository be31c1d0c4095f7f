"""Clean vs robust accuracy of a mixed classifier over a constant-alpha sweep, as a matplotlib Figure."""

from __future__ import annotations

from matplotlib.figure import Figure

from robustlit.mixed.results import MixtureSummary


def sweep_figure(summary: MixtureSummary) -> Figure:
    """Robust vs clean accuracy: the constant-alpha curve (points labelled by alpha), g, h and the mixture.

    ``summary`` is a ``MixtureEvaluation`` summary. Built with ``matplotlib.figure.Figure`` (no pyplot,
    no global state), so it works headless and inside DDP workers.
    """
    sweep = summary["sweep"]
    figure = Figure(figsize=(5.5, 4.5))
    ax = figure.add_subplot()
    points = sweep["points"]
    clean = [100 * p["clean_acc"] for p in points]
    robust = [100 * p["robust_acc"] for p in points]
    ax.plot(clean, robust, "o-", color="tab:gray", label="constant alpha")
    for p, cx, ry in zip(points, clean, robust, strict=True):
        ax.annotate(f"{p['alpha']:g}", (cx, ry), textcoords="offset points", xytext=(4, 4), fontsize=8)
    attack = sweep["attack"]
    markers = {"standard": ("s", "tab:blue", "standard base g"), "robust": ("^", "tab:red", "robust base h")}
    markers["mixture"] = ("*", "tab:green", f"mixture ({summary.get('alpha', 'mixing network')})")
    for name, (marker, color, label) in markers.items():
        res = summary["models"].get(name)
        if res is not None and attack in res["robust_acc"]:
            ax.plot(
                100 * res["clean_acc"],
                100 * res["robust_acc"][attack],
                marker,
                color=color,
                ms=10,
                label=label,
            )
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"robust accuracy (%), {attack}")
    ax.set_title(f"mixed classifier: accuracy vs robustness ({summary['num_examples']} examples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")  # low clean + high robust: the empty corner
    figure.tight_layout()
    return figure
