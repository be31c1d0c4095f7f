"""A small CNN for 8x8 digits and 28x28 MNIST."""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from torch import Tensor, nn


class SmallCNN(nn.Module):
    """conv(32)-conv(64)-pool-conv(128)-pool-FC(hidden)-FC(K); works for any input size >= 8x8.

    A scaled-down relative of TRADES' MNIST SmallCNN (Zhang et al. 2019), sized to train in seconds
    on CPU. Global average pooling after the conv stack makes it input-size agnostic.
    """

    def __init__(
        self,
        num_classes: PositiveInt = 10,
        in_channels: PositiveInt = 1,
        width: PositiveInt = 32,
        hidden: PositiveInt = 128,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
