"""Lightning callbacks: adversarial evaluation, certification, calibration, mixtures, checkpointing."""

from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.calibration import CalibrationEvaluation
from robustlit.callbacks.certification import Certification
from robustlit.callbacks.checkpoint import RobustCheckpoint
from robustlit.callbacks.mixture_evaluation import MixtureEvaluation

__all__ = ["AdversarialEvaluation", "CalibrationEvaluation", "Certification", "MixtureEvaluation", "RobustCheckpoint"]
