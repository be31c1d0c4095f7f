"""Lightning callbacks: adversarial evaluation, checkpointing on robust accuracy."""

from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.checkpoint import RobustCheckpoint

__all__ = ["AdversarialEvaluation", "RobustCheckpoint"]
