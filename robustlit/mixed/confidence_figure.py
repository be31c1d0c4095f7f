"""The confidence report as a figure and a table (docs/mixed_classifier.md, "The confidence report")."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from rich.table import Table

__all__ = ["confidence_figure", "confidence_table"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def confidence_figure(report: dict, measured: Sequence[dict] | None = None, title: str | None = None) -> Figure:
    """Left: the worst-case margins of the robust examples against the margins of the clean mistakes (with the
    AUC). Right: the predicted accuracy-robustness curve over alpha, h's own point, the recommended alpha and,
    if given, ``measured`` points (``{"alpha", "clean_acc", "robust_acc"}`` dicts, e.g. attacked constant-alpha
    mixtures). ``report``: :func:`robustlit.mixed.confidence.summarise_confidence`. No pyplot (headless)."""
    figure = Figure(figsize=(11, 4.3))
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    bins = [i / 25 for i in range(26)]
    robust, mistakes = report["robust_margins"], report["mistake_margins"]
    left.hist(
        robust["values"], bins=bins, alpha=0.6, color="tab:green", label=f"robust, worst case ({robust['count']})"
    )
    left.hist(mistakes["values"], bins=bins, alpha=0.6, color="tab:red", label=f"clean mistakes ({mistakes['count']})")
    auc = report["auc"]
    left.set_title("margins of h" + ("" if auc is None else f" (separation AUC {auc:.2f})"))
    left.set_xlabel("p_y - max other p (robust) / top-1 - top-2 (mistakes)")
    left.set_ylabel("examples")
    left.legend(fontsize=8)
    curve = report["curve"]
    right.plot(
        [100 * p["clean_acc"] for p in curve], [100 * p["robust_acc"] for p in curve], "-", color="tab:gray",
        label="predicted (g fully fooled)",
    )  # fmt: skip
    for p in curve:
        if round(p["alpha"] * 100, 6) % 5 == 0:
            right.annotate(
                f"{p['alpha']:g}", (100 * p["clean_acc"], 100 * p["robust_acc"]), textcoords="offset points",
                xytext=(3, 3), fontsize=7, color="tab:gray",
            )  # fmt: skip
    best = report["recommended"]
    right.plot(100 * best["clean_acc"], 100 * best["robust_acc"], "o", color="tab:gray", ms=8, mfc="none",
               label=f"recommended alpha {best['alpha']:g}")  # fmt: skip
    right.plot(100 * report["clean_acc"], 100 * report["robust_acc"], "^", color="tab:red", ms=9, label="h alone")
    if measured:
        right.plot(
            [100 * p["clean_acc"] for p in measured], [100 * p["robust_acc"] for p in measured], "o--",
            color="tab:blue", label="measured",
        )  # fmt: skip
    right.set_xlabel("clean accuracy (%)")
    right.set_ylabel("robust accuracy (%)")
    right.set_title(f"constant-alpha mixture, clean from {report['curve_clean']}", fontsize=9)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8, loc="lower left")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def confidence_table(
    report: dict, title: str, alphas: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
) -> Table:
    """A rich table: h's clean and robust accuracy, the two margin groups, the AUC, the recommended alpha and a
    few points of the predicted curve."""
    table = Table(title=f"{title} ({report['num_examples']} examples)")
    table.add_column("quantity", justify="left")
    table.add_column("value", justify="right")

    def quartiles(group: dict) -> str:
        q = group["quartiles"]
        return f"{group['count']} examples" + ("" if q is None else "; quartiles " + " / ".join(f"{v:.3f}" for v in q))

    attack = report.get("attack", {})
    table.add_row("h clean accuracy", _pct(report["clean_acc"]))
    table.add_row(
        f"h robust accuracy (APGD-CE + APGD-T, {attack.get('targets', '?')} targets, {attack.get('steps', '?')} steps, "
        f"{attack.get('norm', '?')} eps {attack.get('eps', '?')})",
        _pct(report["robust_acc"]),
    )
    if report.get("standard_clean_acc") is not None:
        table.add_row(
            "g clean accuracy (clean gap)", f"{_pct(report['standard_clean_acc'])} ({_pct(report['clean_gap'])})"
        )
    table.add_row("worst-case margins of the robust examples", quartiles(report["robust_margins"]))
    table.add_row("margins of the clean mistakes", quartiles(report["mistake_margins"]))
    table.add_row("separation AUC", "-" if report["auc"] is None else f"{report['auc']:.3f}")
    best = report["recommended"]
    recovered = best.get("gap_recovered")
    table.add_row(
        f"recommended alpha (predicted robustness cost <= {100 * report['robustness_budget']:g} points)",
        f"{best['alpha']:g}: clean {_pct(best['clean_acc'])}, robust {_pct(best['robust_acc'])}"
        + ("" if recovered is None else f", {100 * recovered:.0f}% of the clean gap"),
    )
    by_alpha = {round(p["alpha"], 6): p for p in report["curve"]}
    for alpha in alphas:
        point = by_alpha.get(round(alpha, 6))
        if point is not None:
            table.add_row(
                f"  predicted at alpha {alpha:g}",
                f"clean {_pct(point['clean_acc'])}, robust {_pct(point['robust_acc'])}",
            )
    return table
