"""One-call evaluation: ``robustlit.evaluate(model, data, threat_model="Linf", eps="8/255")`` and the
``robustlit evaluate`` subcommand (docs/evaluation.md, "Evaluate your model")."""

from robustlit.evaluation.api import STANDARD, attack_specs, evaluate
from robustlit.evaluation.result import EvaluationResult

__all__ = ["STANDARD", "EvaluationResult", "attack_specs", "evaluate"]
