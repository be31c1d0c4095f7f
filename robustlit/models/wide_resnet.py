"""WideResNet-depth-k (Zagoruyko & Komodakis 2016), as used by TRADES (WRN-34-10) and RobustBench (WRN-28-10)."""

from __future__ import annotations

import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn


class WideBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 + shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    """WRN-(depth)-(widen_factor): three groups of (depth-4)/6 wide blocks, 16k/32k/64k channels."""

    def __init__(
        self,
        depth: PositiveInt = 28,
        widen_factor: PositiveInt = 10,
        num_classes: PositiveInt = 10,
        in_channels: PositiveInt = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4 (e.g. 28, 34); got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups, in_planes = [], widths[0]
        for g, stride in enumerate((1, 2, 2)):
            blocks = []
            for b in range(n):
                blocks.append(WideBlock(in_planes, widths[g + 1], stride if b == 0 else 1, dropout))
                in_planes = widths[g + 1]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
