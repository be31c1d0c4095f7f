"""MNIST as in-memory tensors for the multi-seed comparisons (docs/mnist.md): the fixed train / validation split of
:class:`~robustlit.data.MNISTDataModule`, an optional seeded training subset, and the 10,000 test images."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from robustlit.data import MNISTDataModule
from robustlit.data.base import RobustDataModule
from robustlit.data.device_resident import stack_dataset

_CACHE: dict[tuple[str, int, int], dict[str, tuple[Tensor, Tensor]]] = {}


def mnist_splits(root: str = "data", val_size: int = 5000, split_seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """``{"train", "val", "test"}`` -> (images (N, 1, 28, 28) in [0, 1], labels): MNISTDataModule's split (55,000 /
    5,000 by default, fixed by ``split_seed``) and the canonical test set; read once per process."""
    key = (root, val_size, split_seed)
    if key not in _CACHE:
        data = MNISTDataModule(root=root, val_size=val_size, split_seed=split_seed, augment=False, num_workers=0)
        data.prepare_data()
        data.setup()
        _CACHE[key] = {
            "train": stack_dataset(data.train_dataset),
            "val": stack_dataset(data.val_dataset),
            "test": stack_dataset(data.test_dataset),
        }
    return _CACHE[key]


def training_subset(x: Tensor, y: Tensor, size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """The first ``size`` images of a permutation seeded with ``seed`` (all of them for ``None``)."""
    if size is None or size >= len(y):
        return x, y
    if size < 1:
        raise ValueError(f"training subset size must be >= 1; got {size}")
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return x[keep], y[keep]


class TensorSplitsDataModule(RobustDataModule):
    """A DataModule over given (x, y) tensors for train / val / test, with robustlit's seeded epoch order.

    Args:
        splits: ``{"train", "val", "test"}`` -> (images in [0, 1], labels).
        batch_size, eval_batch_size, seed: see :class:`~robustlit.data.base.RobustDataModule`.
        mean, std: normalisation statistics linked into the model (MNIST's by default).
    """

    num_classes = 10

    def __init__(
        self,
        splits: dict[str, tuple[Tensor, Tensor]],
        batch_size: int = 128,
        eval_batch_size: int | None = 1000,
        seed: int = 0,
        mean: tuple[float, ...] = MNISTDataModule.mean,
        std: tuple[float, ...] = MNISTDataModule.std,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, 0, seed)
        self.splits, self.mean, self.std = splits, tuple(mean), tuple(std)

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None:
            self.train_dataset = TensorDataset(*self.splits["train"])
            self.val_dataset = TensorDataset(*self.splits["val"])
            self.test_dataset = TensorDataset(*self.splits["test"])
