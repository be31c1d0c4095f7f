"""AuditReport serialises to JSON and flat metrics; the rich table marks flagged attacks UNRELIABLE."""

from __future__ import annotations

import json

from rich.console import Console

from robustlit.audit import INDICATOR_NAMES, AuditReport, audit_table, print_audit_table
from robustlit.audit import indicators as ind


def _report(name: str, flag: bool) -> AuditReport:
    clean = ind.Indicator("silent_success", False, 0.0, 0.0, "fine", ind.FIXES["silent_success"])
    bad = ind.Indicator(
        "unavailable_gradients", flag, 0.9 if flag else 0.0, 0.01, "zero", ind.FIXES["unavailable_gradients"]
    )
    return AuditReport(
        attack=name,
        norm="Linf",
        eps=0.2,
        steps=50,
        restarts=1,
        n=64,
        clean_accuracy=0.95,
        robust_accuracy=0.9 if flag else 0.0,
        worst_case_accuracy=0.0,
        indicators={"silent_success": clean, "unavailable_gradients": bad},
    )


def test_report_to_dict_and_metrics() -> None:
    report = _report("pgd50_linf_0.2", flag=True)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["reliable"] is False and data["attack"] == "pgd50_linf_0.2"
    assert data["indicators"]["unavailable_gradients"]["flagged"] is True
    assert data["indicators"]["unavailable_gradients"]["fix"].startswith("a non-saturating loss")
    metrics = report.metrics("val/audit")
    assert metrics["val/audit/pgd50_linf_0.2/reliable"] == 0.0
    assert metrics["val/audit/pgd50_linf_0.2/unavailable_gradients_flag"] == 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    assert _report("x", flag=False).reliable
    assert set(ind.FIXES) == set(INDICATOR_NAMES)


def test_table_marks_flagged_attack_unreliable_with_fix() -> None:
    console = Console(record=True, width=220)
    table = print_audit_table([_report("masked", True), _report("plain", False)], console=console)
    text = console.export_text()
    assert table.row_count == 2
    masked_line = next(line for line in text.splitlines() if "masked" in line)
    plain_line = next(line for line in text.splitlines() if "plain" in line)
    assert "UNRELIABLE" in masked_line and "unavailable_gradients" in masked_line
    assert "non-saturating loss" in text
    assert "UNRELIABLE" not in plain_line and "reliable" in plain_line
    assert audit_table({"a": _report("a", False)}).row_count == 1
