"""Tiny models and data shared by the tests of the mixed-classifier Lightning parts (tests/mixed)."""

from __future__ import annotations

from collections import OrderedDict

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustlit.mixed.module import MixedClassifierModule
from robustlit.models.normalize import Normalize

K = 4


def tiny_base(seed: int, width: int, num_classes: int = K) -> nn.Module:
    """[0, 1] 1x8x8 inputs -> logits, with its own normalisation and a batch norm (so modes matter)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        OrderedDict(
            norm=Normalize((0.3,), (0.38,)),
            conv1=nn.Conv2d(1, width, 3, padding=1),
            bn1=nn.BatchNorm2d(width),
            act1=nn.ReLU(),
            conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            act2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(2 * width, num_classes),
        )
    )
    model.bn1.running_mean.uniform_(-0.5, 0.5)
    model.bn1.running_var.uniform_(0.5, 2.0)
    return model.eval()


def tiny_module(**kwargs) -> MixedClassifierModule:
    """A mixed module over two tiny base models, with a small mixing network and cheap attacks."""
    options = dict(
        standard=tiny_base(0, 4),
        robust=tiny_base(1, 6),
        standard_layers=["act1", "act2"],
        robust_layers=["act2"],
        input_shape=[1, 8, 8],
        num_classes=K,
        eps=0.2,
        attack_steps=(1, 2),
        mixing_width=8,
        attacked_copies=2,
    )
    options.update(kwargs)
    torch.manual_seed(2)
    return MixedClassifierModule(**options)


def tiny_dataset(n: int = 32, seed: int = 3) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, K, (n,), generator=gen))


def tiny_loader(n: int = 32, batch_size: int = 16) -> DataLoader:
    return DataLoader(tiny_dataset(n), batch_size=batch_size)


def tiny_trainer(**kwargs) -> pl.Trainer:
    options = dict(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


class Linear2(nn.Module):
    """2-D input -> 2 logits, ``W x + b``; ``inp`` is an identity layer to tap the raw input."""

    def __init__(self, weight: list[list[float]], bias: list[float]) -> None:
        super().__init__()
        self.inp = nn.Identity()
        self.lin = nn.Linear(2, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor(weight))
            self.lin.bias.copy_(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.inp(x))


class ToyDetector(nn.Module):
    """A hand-set mixing network: ``gamma = slope * (x2 - 0.5) + bias``, ``alpha = sigmoid(gamma)``."""

    in_channels = [2]

    def __init__(self, slope: float = 20.0, bias: float = 2.0) -> None:
        super().__init__()
        self.slope, self.bias = slope, bias

    def forward(self, features: list[torch.Tensor], compress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        gamma = self.slope * (features[0][:, 1] - 0.5) + self.bias
        return torch.sigmoid(gamma), gamma
