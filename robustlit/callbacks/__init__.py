"""Lightning callbacks: adversarial evaluation, certification, calibration, mixtures (one base class), checkpointing."""

from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.calibration import CalibrationEvaluation
from robustlit.callbacks.certification import Certification
from robustlit.callbacks.checkpoint import BestCheckpoint, best_and_last_checkpoints
from robustlit.callbacks.evaluation import EvaluationCallback
from robustlit.callbacks.mixture_evaluation import MixtureEvaluation

__all__ = [
    "AdversarialEvaluation",
    "BestCheckpoint",
    "CalibrationEvaluation",
    "Certification",
    "EvaluationCallback",
    "MixtureEvaluation",
    "best_and_last_checkpoints",
]
