"""Evaluation metrics: calibration, worst-class accuracy, distribution-shift corruptions."""

from robustlit.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    reliability_diagram_figure,
)
from robustlit.metrics.shift import SHIFT_NAMES, contrast, corrupt, gaussian_blur, gaussian_noise, rotate, shot_noise
from robustlit.metrics.worst_class import (
    per_class_accuracy,
    worst_class_accuracy,
    worst_fraction_class_accuracy,
)

__all__ = [
    "SHIFT_NAMES",
    "contrast",
    "corrupt",
    "brier_score",
    "expected_calibration_error",
    "gaussian_blur",
    "gaussian_noise",
    "negative_log_likelihood",
    "per_class_accuracy",
    "reliability_bins",
    "reliability_diagram_figure",
    "rotate",
    "shot_noise",
    "worst_class_accuracy",
    "worst_fraction_class_accuracy",
]
