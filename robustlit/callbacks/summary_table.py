"""The rich summary table printed at the end of fit / validate / test."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from robustlit.audit import AuditReport, print_audit_table
from robustlit.callbacks.evaluation import pct as _pct


def budget(spec: dict) -> str:
    """The attack's budget as the table shows it: ``std`` (AutoAttack), ``1`` (FGSM), ``<queries>q`` (Square),
    else its steps."""
    name = str(spec["name"]).rsplit(".", 1)[-1]
    queries = f"{spec.get('queries')}q"
    return {"autoattack": "std", "fgsm": "1", "square": queries}.get(name, str(spec.get("steps", "")))


def eps_label(spec: dict) -> str:
    """The radius as written when it was a fraction (``8/255``), else four significant digits."""
    text = str(spec.get("eps_text", ""))
    return text if "/" in text else f"{spec['eps']:.4g}"


def print_robustness_table(summary: dict, title: str, console: Console | None = None) -> None:
    """One row for clean accuracy, one per attack (its metric name -- which shows the loss, restarts and EOT --,
    norm, eps, budget, restarts), one for the per-example worst case over all attacks. An accuracy whose
    attack-failure audit (docs/audit.md) flagged an indicator reads UNRELIABLE; the audit table with the fix
    to try is printed under the table."""
    if console is None:
        console = Console()
        # wide enough that the audit's fixes do not wrap into tall cells (a log file has no width of its own)
        console.width = max(console.width, 120 if console.is_terminal else 220)
    table = Table(title=f"{title} ({summary['num_examples']} examples)")
    tail = f"worst {round(100 * summary.get('worst_fraction', 0.3))}% classes"
    for column in ("attack", "norm", "eps", "budget", "restarts", "accuracy", "worst class", tail):
        table.add_column(column, justify="left" if column == "attack" else "right", no_wrap=True)
    table.add_row("clean", "-", "0", "-", "-", _pct(summary["clean_acc"]), "", "")
    audits = []
    for name, res in summary["attacks"].items():
        spec = res["spec"]
        if name == "ensemble":
            table.add_row("all (per-example worst)", "", "", "", "", *_accs(res), style="bold")
            continue
        restarts = "std" if spec["name"] == "autoattack" else str(spec["restarts"])
        table.add_row(name, spec["norm"], eps_label(spec), budget(spec), restarts, *_accs(res))
        if res.get("audit"):
            audits.append(AuditReport.from_dict(res["audit"]))
    console.print(table)
    if audits:
        n = audits[0].n
        title = f"Attack-failure audit (Pintor et al. 2022) on the first {n} of these examples"
        print_audit_table(audits, console=console, title=title)


def robustness_line(summary: dict, title: str) -> str:
    """The table as one line: ``val: adversarial evaluation (270 examples): clean 98.15%, pgd50_linf_0.2 70.74%, all
    70.74%`` (UNRELIABLE marked as in the table)."""
    cells = [f"clean {_pct(summary['clean_acc'])}"]
    for name, res in summary["attacks"].items():
        flag = " UNRELIABLE" if res.get("unreliable") else ""
        cells.append(f"{'all' if name == 'ensemble' else name} {_pct(res['robust_acc'])}{flag}")
    return f"{title} ({summary['num_examples']} examples): " + ", ".join(cells)


def _accs(res: dict) -> tuple[str, str, str]:
    accuracy = _pct(res["robust_acc"])
    if res.get("unreliable"):
        accuracy = f"[red]{accuracy} UNRELIABLE[/red]"
    return (accuracy, _pct(res["worst_class_robust_acc"]), _pct(res["worst_fraction_robust_acc"]))
