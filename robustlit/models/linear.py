"""A linear classifier on feature vectors (the Tsipras et al. 2019 study; docs/tradeoff.md)."""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from torch import Tensor, nn


class LinearClassifier(nn.Module):
    """logits = W x + b for x of shape (N, D) (flattened if it has more dimensions)."""

    def __init__(self, in_features: PositiveInt, num_classes: PositiveInt = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))
