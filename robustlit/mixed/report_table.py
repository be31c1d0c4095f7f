"""The rich table of a mixed-classifier evaluation: both base models and the mixture in one table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from robustlit.callbacks.evaluation import pct as _pct

LABELS = {"standard": "standard base g", "robust": "robust base h", "mixture": "mixture"}


def print_mixture_table(summary: dict, title: str, console: Console | None = None) -> None:
    """Rows: g, h, the mixture, then the constant-alpha sweep; columns: clean, each attack, the adaptive
    attacks (mixture only), the per-example worst over all of them, and the mixture's mean alpha."""
    attacks = [a["metric_name"] for a in summary["attacks"]]
    adaptive = [f"adaptive_{name}" for name in summary["adaptive"]["of"]]
    weights = ", ".join(f"{w:g}" for w in summary["adaptive"]["bce_weights"])
    table = Table(title=f"{title} ({summary['num_examples']} examples)")
    table.add_column("model", justify="left", no_wrap=True)
    for column in [
        "clean",
        *attacks,
        *(f"{a} (w in {{{weights}}})" for a in adaptive),
        "worst of all",
        f"mean alpha (clean / {attacks[0]} / adaptive)",
    ]:
        table.add_column(column, justify="right")
    for name in [m for m in ("standard", "robust", "mixture") if m in summary["models"]]:
        res = summary["models"][name]
        cells = [_pct(res["robust_acc"].get(a)) for a in attacks + adaptive]
        alpha = "-"
        if name == "mixture":
            values = [res["alpha_clean"], res["alpha_attacked"], res.get("alpha_adaptive")]
            alpha = " / ".join("-" if v is None else f"{v:.3f}" for v in values)
        label = LABELS[name] + (f" ({summary['alpha']})" if name == "mixture" else "")
        table.add_row(
            label,
            _pct(res["clean_acc"]),
            *cells,
            _pct(res["worst_robust_acc"]),
            alpha,
            style="bold" if name == "mixture" else None,
        )
    sweep = summary["sweep"]
    for point in sweep["points"]:
        cells = [_pct(point["robust_acc"]) if a == sweep["attack"] else "" for a in attacks]
        table.add_row(
            f"  constant alpha = {point['alpha']:g}",
            _pct(point["clean_acc"]),
            *cells,
            *[""] * len(adaptive),
            "",
            f"{point['alpha']:g}",
        )
    captions = []
    for kind, res in summary.get("certified", {}).items():
        accs = ", ".join(f"r={r}: {_pct(v)}" for r, v in res["acc_at"].items())
        model = "smoothed robust branch, not the evaluated mixture" if kind == "smoothed_robust_branch" else kind
        captions.append(f"certified ({model}, alpha >= {res['mixture_alpha_lower_bound']:.3g}): {accs}")
    if captions:
        table.caption = "\n".join(captions)
    if console is None:
        console = Console()
        console.width = max(console.width, 140)
    console.print(table)
