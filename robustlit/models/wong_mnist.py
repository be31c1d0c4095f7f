"""The small MNIST network of Wong, Rice and Kolter (2020, "Fast is better than free", appendix on MNIST)."""

from __future__ import annotations

from torch import Tensor, nn


class WongMNISTNet(nn.Module):
    """conv 16@4x4 stride 2 - conv 32@4x4 stride 2 - FC 100 - FC K, ReLUs (padding 1, no batch-norm).

    The network the authors train with FGSM from a random start on MNIST (their ``mnist_net``). Each
    convolution halves the side, so ``input_size`` 28 gives 32 x 7 x 7 features and 8 (digits) 32 x 2 x 2.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, hidden: int = 100) -> None:
        super().__init__()
        if input_size < 4:
            raise ValueError(f"input_size must be >= 4 (two stride-2 convolutions); got {input_size}")
        side = input_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(32 * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
