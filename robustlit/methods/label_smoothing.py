"""Uniform label smoothing (Szegedy et al. 2016).

AR-AdaLS, its robustness-adaptive form, is :mod:`robustlit.methods.ar_adals`; it and
:class:`~robustlit.data.indexed.IndexedDataset` lived in this file before and are still importable from it, so
configs and checkpoints that name ``robustlit.methods.label_smoothing.ARAdaLS`` keep working.
"""

from __future__ import annotations

from typing import Any

from jsonargparse.typing import ClosedUnitInterval
from torch import Tensor

from robustlit.data.indexed import IndexedDataset
from robustlit.losses.label_smoothing import smoothed_cross_entropy
from robustlit.methods.ar_adals import ARAdaLS
from robustlit.methods.base import RobustClassifier

__all__ = ["ARAdaLS", "IndexedDataset", "LabelSmoothing"]


class LabelSmoothing(RobustClassifier):
    """Uniform label smoothing (Szegedy et al. 2016): CE against ỹ = (1 − s) onehot(y) + s / K on clean inputs.

    Args:
        smoothing: s ∈ [0, 1] (0 is plain cross-entropy).
        **kwargs: see :class:`RobustClassifier`.
    """

    def __init__(self, smoothing: ClosedUnitInterval = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must lie in [0, 1]; got {smoothing}")
        self.smoothing = smoothing

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return smoothed_cross_entropy(self(x), y, self.smoothing)
