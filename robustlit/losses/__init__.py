"""Pure-torch losses and weightings (no Lightning import), testable on their own."""

from robustlit.attacks.log_barrier import log_barrier_penalty
from robustlit.losses.dro import (
    DROWeights,
    RunningNormaliser,
    dro_objective,
    dro_weights,
    weighted_mean,
)
from robustlit.losses.instance_weights import (
    GAIRATWeights,
    InstanceWeighting,
    LossTerms,
    MAILWeights,
    counting_objective,
    gairat_weights,
    mail_weights,
    probabilistic_margin,
)
from robustlit.losses.label_smoothing import (
    AdaptiveSmoothingSchedule,
    bin_confidence_accuracy,
    smoothed_cross_entropy,
    smoothed_targets,
)
from robustlit.losses.mart import boosted_cross_entropy, mart_loss, mart_terms
from robustlit.losses.robustness_score import RobustnessScore, robustness_score

__all__ = [
    "AdaptiveSmoothingSchedule",
    "DROWeights",
    "GAIRATWeights",
    "InstanceWeighting",
    "LossTerms",
    "MAILWeights",
    "RobustnessScore",
    "RunningNormaliser",
    "bin_confidence_accuracy",
    "boosted_cross_entropy",
    "counting_objective",
    "dro_objective",
    "dro_weights",
    "gairat_weights",
    "log_barrier_penalty",
    "mail_weights",
    "mart_loss",
    "mart_terms",
    "probabilistic_margin",
    "robustness_score",
    "smoothed_cross_entropy",
    "smoothed_targets",
    "weighted_mean",
]
