"""Attack-failure indicators and robustness curves (pure torch; docs/audit.md).

After Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of
Adversarial Examples" (NeurIPS 2022). Entry points: :func:`audit_attack` -> :class:`AuditReport`,
:func:`robustness_curve`, :func:`certified_accuracy_curve`, :func:`robustness_curve_figure`,
:func:`print_audit_table`.
"""

from robustlit.audit.audit import AttackFactory, audit_attack
from robustlit.audit.curves import certified_accuracy_curve, robustness_curve
from robustlit.audit.figure import robustness_curve_figure
from robustlit.audit.indicators import AuditThresholds, Indicator
from robustlit.audit.objectives import AttackLoss, attack_objective
from robustlit.audit.report import INDICATOR_NAMES, AuditReport
from robustlit.audit.table import audit_table, print_audit_table
from robustlit.audit.trace import AttackTrace, traced_pgd

__all__ = [
    "INDICATOR_NAMES",
    "AttackFactory",
    "AttackLoss",
    "AttackTrace",
    "AuditReport",
    "AuditThresholds",
    "Indicator",
    "attack_objective",
    "audit_attack",
    "audit_table",
    "certified_accuracy_curve",
    "print_audit_table",
    "robustness_curve",
    "robustness_curve_figure",
    "traced_pgd",
]
