"""Standard (empirical-risk-minimisation) training."""

from __future__ import annotations

from robustlit.methods.base import RobustClassifier


class Standard(RobustClassifier):
    """Plain cross-entropy on clean inputs: the undefended baseline every robust number is compared to."""
