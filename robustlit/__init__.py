"""robustlit: a PyTorch Lightning framework for adversarial robustness research."""

from typing import Any

from robustlit.checkpoint import CheckpointError, load_classifier, load_module

__version__ = "0.1.0"
__all__ = ["CheckpointError", "EvaluationResult", "__version__", "evaluate", "load_classifier", "load_module"]


def __getattr__(name: str) -> Any:
    """``robustlit.evaluate`` and ``robustlit.EvaluationResult``, imported on first use (they bring Lightning)."""
    if name in ("evaluate", "EvaluationResult"):
        import robustlit.evaluation as evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'robustlit' has no attribute {name!r}")
