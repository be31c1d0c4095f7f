"""Evaluation metrics: calibration, worst-class accuracy, distribution-shift corruptions."""

from robustlit.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    reliability_diagram_figure,
)
from robustlit.metrics.shift import gaussian_blur, gaussian_noise
from robustlit.metrics.worst_class import (
    per_class_accuracy,
    worst_class_accuracy,
    worst_fraction_class_accuracy,
)

__all__ = [
    "brier_score",
    "expected_calibration_error",
    "gaussian_blur",
    "gaussian_noise",
    "negative_log_likelihood",
    "per_class_accuracy",
    "reliability_bins",
    "reliability_diagram_figure",
    "worst_class_accuracy",
    "worst_fraction_class_accuracy",
]
