"""Shared DataModule behaviour: [0, 1] inputs, fixed splits, exact (unpadded) evaluation under DDP."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustlit.data.epoch_order import EpochSeededDataset, EpochShuffle
from robustlit.utils.distributed import world


class RobustDataModule(pl.LightningDataModule):
    """Base of every robustlit DataModule (``docs/contracts.md``, pixel space).

    Subclasses set ``train_dataset``, ``val_dataset``, ``test_dataset`` in ``setup`` and the class
    attributes below. Evaluation loaders use an unpadded distributed sampler under DDP so that every
    example is counted exactly once (Lightning's default DistributedSampler pads by repeating).
    The training order and the augmentation randomness are functions of ``(seed, epoch)``
    (:mod:`robustlit.data.epoch_order`), so a run resumed from a checkpoint sees the same data as
    the uninterrupted run (``docs/faults.md``).

    Args:
        batch_size: training batch size (per process).
        eval_batch_size: validation/test batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        seed: seed of the training shuffle order (and of the augmentations).
    """

    #: Number of classes and normalisation statistics (linked into the model by the CLI).
    num_classes: int = 10
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    #: Input domain; ``None`` for unbounded feature vectors.
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:  # PositiveInt refuses it at parse time; this guards direct Python use
                raise ValueError(f"{name} must be >= 1; got {value}")
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
            rank, size = world()
            sampler = EpochShuffle(dataset, seed=self.seed, num_replicas=size, rank=rank)
            return DataLoader(
                EpochSeededDataset(dataset, self.seed), batch_size=self.batch_size, sampler=sampler, **common
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
    """Raise a clear error when a batch leaves the declared input domain (``docs/contracts.md``, pixel space)."""
    if bounds is None or x.numel() == 0:
        return
    low, high = x.min().item(), x.max().item()
    if low < bounds[0] or high > bounds[1]:
        raise ValueError(
            f"{where} produced inputs in [{low:.4g}, {high:.4g}], outside {list(bounds)}. robustlit works in "
            "pixel space: do not normalise in the data transforms; normalisation is the first layer of the "
            "model (robustlit.models.Normalize), so eps and radii stay in pixel units."
        )
