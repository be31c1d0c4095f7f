"""Old import path of the mixed classifier's torch parts; they live in :mod:`robustlit.mixed`."""

from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.feature_tap import FeatureTap
from robustlit.mixed.mixing_network import MixingNetwork

__all__ = ["FeatureTap", "MixedClassifier", "MixingNetwork"]
