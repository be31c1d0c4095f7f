"""The mixed classifier family: a standard and a robust model mixed in probability space.

Adaptive smoothing (Bai, Anderson, Kim, Sojoudi 2023, arXiv 2301.12554) and MixedNUTS (Bai, Zhou,
Patel, Sojoudi, TMLR 2024, arXiv 2402.02263); see docs/mixed_classifier.md.

Pure torch (no Lightning): ``mixing_rule`` (the mixture's log-probabilities), ``feature_tap``,
``mixing_network``, ``classifier`` (:class:`MixedClassifier`), ``loss`` (mixing-network objective),
``adaptive_attack`` and ``apgd`` (evaluation attacks through alpha), ``training_attack`` (randomised
training attack), ``radius`` and ``certificates`` (certified radii), ``mixednuts`` and
``mixednuts_classifier`` (training-free nonlinear mixing), ``confidence`` and ``confidence_figure`` (the
confidence report of a robust model: will mixing pay off, at which alpha). Lightning: ``module``
(:class:`MixedClassifierModule`), ``mixednuts_module`` (:class:`MixedNUTSModule`), ``confidence_evaluation``
(:class:`ConfidenceReport`, the report as an evaluation callback) and ``bases`` (loading the base
models); they are imported on first access of their names here, so importing a pure file of this package
imports no Lightning.
"""

from __future__ import annotations

from typing import Any

from robustlit.mixed.adaptive_attack import AlphaExposed, adaptive_mixture_loss, adaptive_pgd_attack
from robustlit.mixed.apgd import mixture_apgd
from robustlit.mixed.certificates import (
    SMOOTHED_BRANCH_CERTIFIES,
    SMOOTHED_BRANCH_METRIC,
    certify_mixture_lipschitz,
    certify_smoothed_robust_branch,
)
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.confidence import confidence_report, predicted_curve, worst_case_margins
from robustlit.mixed.confidence_figure import confidence_figure, confidence_table
from robustlit.mixed.feature_tap import FeatureTap
from robustlit.mixed.loss import mixing_bce_loss, mixing_network_loss
from robustlit.mixed.mixednuts import (
    hard_max_log_probs,
    mixednuts_log_probs,
    mixednuts_monotone_mask,
    mixednuts_transform,
    search_mixednuts_parameters,
)
from robustlit.mixed.mixednuts_classifier import MixedNUTSClassifier
from robustlit.mixed.mixing_network import MixingNetwork
from robustlit.mixed.mixing_rule import mix_log_probs
from robustlit.mixed.radius import lipschitz_mixture_radius, smoothed_mixture_radius
from robustlit.mixed.training_attack import randomized_mixture_attack

_LIGHTNING_NAMES = {
    "MixedClassifierModule": "robustlit.mixed.module",
    "MixedNUTSModule": "robustlit.mixed.mixednuts_module",
    "ConfidenceReport": "robustlit.mixed.confidence_evaluation",
    "MIXED_DIGITS_COMMAND": "robustlit.mixed.bases",
    "load_base_model": "robustlit.mixed.bases",
}


def __getattr__(name: str) -> Any:
    """Import the Lightning parts on first use (PEP 562)."""
    if name in _LIGHTNING_NAMES:
        import importlib

        return getattr(importlib.import_module(_LIGHTNING_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MIXED_DIGITS_COMMAND",
    "SMOOTHED_BRANCH_CERTIFIES",
    "SMOOTHED_BRANCH_METRIC",
    "AlphaExposed",
    "ConfidenceReport",
    "FeatureTap",
    "MixedClassifier",
    "MixedClassifierModule",
    "MixedNUTSClassifier",
    "MixedNUTSModule",
    "MixingNetwork",
    "adaptive_mixture_loss",
    "adaptive_pgd_attack",
    "certify_mixture_lipschitz",
    "certify_smoothed_robust_branch",
    "confidence_figure",
    "confidence_report",
    "confidence_table",
    "hard_max_log_probs",
    "lipschitz_mixture_radius",
    "load_base_model",
    "mix_log_probs",
    "mixednuts_log_probs",
    "mixednuts_monotone_mask",
    "mixednuts_transform",
    "mixture_apgd",
    "mixing_bce_loss",
    "mixing_network_loss",
    "predicted_curve",
    "randomized_mixture_attack",
    "search_mixednuts_parameters",
    "smoothed_mixture_radius",
    "worst_case_margins",
]
