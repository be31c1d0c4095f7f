"""The result of a mixed-classifier evaluation as typed values (docs/mixed_classifier.md, "Evaluation").

:class:`MixtureSummary` is what :meth:`robustlit.mixed.evaluation.MixtureEvaluation.evaluate` returns, what
the rich table (:mod:`robustlit.mixed.report_table`), the sweep figure (:mod:`robustlit.mixed.sweep_figure`)
and the logged metrics read, and what ``mixture_evaluation_<stage>.json`` holds. They are ``TypedDict`` s:
plain dictionaries at run time (the JSON files and every reader stay as they were), whose keys and value
types a type checker and a reader of this file know. Pure Python, no Lightning.
"""

from __future__ import annotations

from typing import Any, TypedDict

try:  # Python 3.11+
    from typing import NotRequired
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

__all__ = ["AdaptiveSettings", "CertifiedResult", "MixtureSummary", "ModelResult", "SweepPoint", "SweepResult"]


class ModelResult(TypedDict):
    """One of the standard base g, the robust base h and the mixture; accuracies in [0, 1]."""

    clean_acc: float
    #: attack metric name (``adaptive_<name>`` for the mixture's adaptive attacks) -> robust accuracy
    robust_acc: dict[str, float]
    #: per example robust against every attack of ``robust_acc``
    worst_robust_acc: float
    #: the mixture only: mean alpha on clean inputs, under the first attack, under the adaptive attacks
    alpha_clean: NotRequired[float]
    alpha_attacked: NotRequired[float]
    alpha_adaptive: NotRequired[float]
    #: the mixture only: of h's robust examples, the share the mixture keeps robust
    kept_of_robust_base: NotRequired[float]


class AdaptiveSettings(TypedDict):
    """The adaptive attacks through alpha: their BCE weights, the attacks they twin, APGD-T's target count."""

    bce_weights: list[float]
    of: list[str]
    targets: int


class SweepPoint(TypedDict):
    alpha: float
    clean_acc: float
    robust_acc: float


class SweepResult(TypedDict):
    """The constant-alpha sweep under one attack (its metric name)."""

    attack: str
    points: list[SweepPoint]


class CertifiedResult(TypedDict, total=False):
    """A certificate's parameters (``lipschitz``; ``certifies``, ``sigma``, ``n0``, ``n``, ``failure_prob`` for the
    smoothed robust branch) and its results."""

    lipschitz: float | None
    certifies: str
    sigma: float | None
    n0: int
    n: int
    failure_prob: float
    mixture_alpha_lower_bound: float
    mean_radius: float
    #: radius (as text) -> certified accuracy at that radius
    acc_at: dict[str, float]


class MixtureSummary(TypedDict):
    """The whole evaluation of one stage."""

    num_examples: int
    #: each AttackSpec's fields and its ``metric_name``
    attacks: list[dict[str, Any]]
    adaptive: AdaptiveSettings
    #: the constant alpha, or ``"mixing network"``
    alpha: float | str
    #: ``standard``, ``robust`` (unless ``base_models`` is off) and ``mixture``
    models: dict[str, ModelResult]
    sweep: SweepResult
    #: ``lipschitz`` and/or ``smoothed_robust_branch``
    certified: dict[str, CertifiedResult]
    #: with ``per_example``: ``index`` and, per ``<model>/<attack>`` column, 0/1 robust per example
    per_example: NotRequired[dict[str, list[int]]]
