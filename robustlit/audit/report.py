"""The result of auditing one attack: its indicators and whether its robust accuracy can be trusted."""

from __future__ import annotations

from dataclasses import dataclass, field

from robustlit.audit.indicators import Indicator

INDICATOR_NAMES = (
    "silent_success",
    "incomplete_optimisation",
    "unavailable_gradients",
    "unconstrained_failure",
    "non_monotone",
    "transfer_success",
)


@dataclass
class AuditReport:
    """Attack-failure indicators for one attack on one set of examples (docs/audit.md).

    Attributes:
        attack: name of the audited attack (e.g. its metric name ``pgd50_linf_0.2``).
        norm, eps, steps, restarts: the threat model and budget audited.
        n: number of audited examples.
        clean_accuracy: accuracy without attack on them.
        robust_accuracy: accuracy under the audited attack (what would be reported).
        worst_case_accuracy: accuracy under the per-example worst case of everything the audit ran at
            this eps (the audited attack, the traced PGD, the black-box and transfer attacks); a robust
            accuracy above it is overstated.
        indicators: by name, see ``INDICATOR_NAMES``.
    """

    attack: str
    norm: str
    eps: float
    steps: int
    restarts: int
    n: int
    clean_accuracy: float
    robust_accuracy: float
    worst_case_accuracy: float
    indicators: dict[str, Indicator] = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        """No indicator fired."""
        return not any(ind.flagged for ind in self.indicators.values())

    @property
    def flagged(self) -> list[Indicator]:
        return [ind for ind in self.indicators.values() if ind.flagged]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (plain floats, ints, strings, bools)."""
        return {
            "attack": self.attack,
            "norm": self.norm,
            "eps": float(self.eps),
            "steps": int(self.steps),
            "restarts": int(self.restarts),
            "n": int(self.n),
            "clean_accuracy": float(self.clean_accuracy),
            "robust_accuracy": float(self.robust_accuracy),
            "worst_case_accuracy": float(self.worst_case_accuracy),
            "reliable": self.reliable,
            "indicators": {name: ind.to_dict() for name, ind in self.indicators.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AuditReport:
        """Inverse of :meth:`to_dict` (e.g. a report read back from an evaluation's JSON summary)."""
        fields = {k: data[k] for k in ("attack", "norm", "eps", "steps", "restarts", "n")}
        accuracies = {k: float(data[k]) for k in ("clean_accuracy", "robust_accuracy", "worst_case_accuracy")}  # type: ignore[arg-type]
        indicators = {}
        for name, raw in dict(data.get("indicators") or {}).items():  # type: ignore[call-overload]
            indicators[name] = Indicator(**{**raw, "value": float(raw["value"])})
        return cls(**fields, **accuracies, indicators=indicators)  # type: ignore[arg-type]

    def metrics(self, prefix: str = "audit") -> dict[str, float]:
        """Flat scalars for a logger: ``{prefix}/{attack}/{indicator}`` (value) and ``.../{indicator}_flag``."""
        base = f"{prefix}/{self.attack}"
        out = {
            f"{base}/reliable": float(self.reliable),
            f"{base}/worst_case_accuracy": float(self.worst_case_accuracy),
        }
        for name, ind in self.indicators.items():
            out[f"{base}/{name}"] = float(ind.value)
            out[f"{base}/{name}_flag"] = float(ind.flagged)
        return out
