"""Lightning callbacks: adversarial evaluation, certification, calibration (one base class), checkpointing.

The mixed classifier's evaluation lives with its family: ``robustlit.mixed.evaluation.MixtureEvaluation``.
"""

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
    "PublishCheckpointsAfterLogs",
    "best_and_last_checkpoints",
]
