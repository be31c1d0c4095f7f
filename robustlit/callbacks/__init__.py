"""Lightning callbacks: adversarial evaluation, certification, calibration, mixtures (one base class), checkpointing."""

from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.calibration import CalibrationEvaluation
from robustlit.callbacks.catastrophic_overfitting import CatastrophicOverfittingGuard
from robustlit.callbacks.certification import Certification
from robustlit.callbacks.checkpoint import BestCheckpoint, best_and_last_checkpoints
from robustlit.callbacks.configured_optimizer import ConfiguredOptimizerOnResume
from robustlit.callbacks.cyclic_lr import CyclicLearningRate
from robustlit.callbacks.ema import EMAWeights
from robustlit.callbacks.evaluation import EvaluationCallback
from robustlit.callbacks.publish_checkpoints import PublishCheckpointsAfterLogs

__all__ = [
    "AdversarialEvaluation",
    "BestCheckpoint",
    "CalibrationEvaluation",
    "CatastrophicOverfittingGuard",
    "Certification",
    "ConfiguredOptimizerOnResume",
    "CyclicLearningRate",
    "EMAWeights",
    "EvaluationCallback",
    "MixtureEvaluation",
    "PublishCheckpointsAfterLogs",
    "best_and_last_checkpoints",
]


def __getattr__(name: str) -> object:
    """``robustlit.callbacks.MixtureEvaluation`` lives in the mixed-classifier package; imported on first
    use, since that module itself imports :mod:`robustlit.callbacks.evaluation` (no import cycle)."""
    if name == "MixtureEvaluation":
        from robustlit.mixed.evaluation import MixtureEvaluation

        return MixtureEvaluation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
