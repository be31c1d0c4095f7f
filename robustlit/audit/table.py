"""A rich table of audit reports: every attack an indicator flags is printed as UNRELIABLE with its fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from robustlit.audit.report import AuditReport


def audit_table(reports: Sequence[AuditReport] | Mapping[str, AuditReport], title: str | None = None) -> Table:
    """Build the table (one row per audited attack) without printing it."""
    rows = list(reports.values()) if isinstance(reports, Mapping) else list(reports)
    table = Table(title=title or "Attack-failure indicators (Pintor et al. 2022)")
    for column in ("attack", "n", "clean", "robust acc", "worst case found", "status", "flagged: fix to try"):
        table.add_column(column, overflow="fold")
    for report in rows:
        flagged = report.flagged
        robust = f"{report.robust_accuracy:.4f}"
        status = "[green]reliable[/green]"
        if flagged:
            robust = f"[red]{robust} (UNRELIABLE)[/red]"
            status = "[bold red]UNRELIABLE[/bold red]"
        fixes = "\n".join(f"{i.name} ({i.value:.3g}): {i.fix}" for i in flagged) or "-"
        table.add_row(
            report.attack,
            str(report.n),
            f"{report.clean_accuracy:.4f}",
            robust,
            f"{report.worst_case_accuracy:.4f}",
            status,
            fixes,
        )
    return table


def print_audit_table(
    reports: Sequence[AuditReport] | Mapping[str, AuditReport],
    console: Console | None = None,
    title: str | None = None,
) -> Table:
    """Print :func:`audit_table` to ``console`` (default: stdout) and return it."""
    table = audit_table(reports, title)
    (console or Console()).print(table)
    return table
