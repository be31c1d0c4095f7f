"""Shared DataModule behaviour: [0, 1] inputs, fixed splits, exact (unpadded) evaluation under DDP."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class RobustDataModule(pl.LightningDataModule):
    """Base of every robustlit DataModule (docs/contracts.md, pixel space).

    Subclasses set ``train_dataset``, ``val_dataset``, ``test_dataset`` in ``setup`` and the class
    attributes below. Evaluation loaders use an unpadded distributed sampler under DDP so that every
    example is counted exactly once (Lightning's default DistributedSampler pads by repeating).

    Args:
        batch_size: training batch size (per process).
        eval_batch_size: validation/test batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        seed: seed of the training shuffle order.
    """

    #: Number of classes and normalisation statistics (linked into the model by the CLI).
    num_classes: int = 10
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    #: Input domain; ``None`` for unbounded feature vectors.
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self, batch_size: int = 128, eval_batch_size: int | None = None, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    def _loader(self, dataset: Dataset | None, split: str, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() did not create the {split} split")
        common: dict[str, Any] = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if train:
            generator = torch.Generator().manual_seed(self.seed)
            return DataLoader(
                dataset, batch_size=self.batch_size, shuffle=True, generator=generator, **common
            )
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "validation", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        check_in_bounds(batch[0], self.bounds, type(self).__name__)
        return batch


def check_in_bounds(x: Tensor, bounds: tuple[float, float] | None, where: str) -> None:
    """Raise a clear error when a batch leaves the declared input domain (docs/contracts.md, pixel space)."""
    if bounds is None or x.numel() == 0:
        return
    low, high = x.min().item(), x.max().item()
    if low < bounds[0] or high > bounds[1]:
        raise ValueError(
            f"{where} produced inputs in [{low:.4g}, {high:.4g}], outside {list(bounds)}. robustlit works in "
            "pixel space: do not normalise in the data transforms; normalisation is the first layer of the "
            "model (robustlit.models.Normalize), so eps and radii stay in pixel units."
        )
