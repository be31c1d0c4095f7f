"""A quickly trained, undefended SmallCNN on the 8x8 sklearn digits (inputs in [0, 1]) for attack tests."""

from __future__ import annotations

import functools

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from robustlit.models import SmallCNN


@functools.cache
def digits() -> tuple[Tensor, Tensor]:
    data = load_digits()
    return torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16, torch.tensor(data.target)


@functools.cache
def undefended_small_cnn(epochs: int = 15, seed: int = 0) -> nn.Module:
    """Standard training (Adam, cross-entropy) on the first 1400 digits; returns the model in eval mode."""
    x, y = digits()
    x, y = x[:1400], y[:1400]
    torch.manual_seed(seed)
    model = SmallCNN(num_classes=10, in_channels=1, width=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def held_out(n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` digits not used for training."""
    x, y = digits()
    return x[1400 : 1400 + n], y[1400 : 1400 + n]


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()
