"""Shared DataModule behaviour: [0, 1] inputs, fixed splits, exact (unpadded) evaluation under DDP."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustlit.attacks.ball import Bounds
from robustlit.data.device_resident import DeviceResidentLoader, stack_dataset
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
        device_resident: keep the whole training split on the accelerator and augment it there in
            batches (:class:`~robustlit.data.device_resident.DeviceResidentLoader`, docs/speed.md):
            same order and batches, augmentation drawn from the same distribution.
    """

    #: Number of classes and normalisation statistics (linked into the model by the CLI).
    num_classes: int = 10
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    #: Input domain; ``None`` for unbounded feature vectors.
    bounds: Bounds = (0.0, 1.0)

    def __init__(
        self,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        device_resident: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:  # PositiveInt refuses it at parse time; this guards direct Python use
                raise ValueError(f"{name} must be >= 1; got {value}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.device_resident = device_resident
        self._resident: DeviceResidentLoader | None = None
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

    def train_dataloader(self) -> DataLoader | DeviceResidentLoader:
        if self.device_resident:
            return self._device_resident_loader()
        return self._loader(self.train_dataset, "train", train=True)

    # ---- the accelerator-resident training path (docs/speed.md) ---------------------------------------
    def resident_train_split(self) -> tuple[Tensor, Tensor]:
        """The un-augmented training split as ``(x, y)`` tensors (override for a faster read)."""
        if self.train_dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() did not create the train split")
        return stack_dataset(self.train_dataset)

    def device_augmentation(self) -> tuple[int, float]:
        """``(crop padding, flip probability)`` of the training augmentation; none by default."""
        return 0, 0.0

    def _device_resident_loader(self) -> DeviceResidentLoader:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self._resident is None or self._resident.device != device:
            x, y = self.resident_train_split()
            padding, flip_p = self.device_augmentation()
            rank, size = world()
            self._resident = DeviceResidentLoader(
                x, y, self.batch_size, device, self.seed, padding, flip_p, num_replicas=size, rank=rank
            )
        return self._resident

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "validation", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        check_in_bounds(batch[0], self.bounds, type(self).__name__)
        return batch


def check_in_bounds(x: Tensor, bounds: Bounds, where: str) -> None:
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
