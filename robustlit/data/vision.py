"""Fashion-MNIST, KMNIST, CIFAR-10 and CIFAR-100 through torchvision, in [0, 1] pixel space (no normalisation
here). MNIST: :mod:`robustlit.data.mnist`."""

from __future__ import annotations

from pathlib import Path

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from robustlit.data.base import RobustDataModule
from robustlit.data.device_resident import stack_dataset


class TorchvisionDataModule(RobustDataModule):
    """Common logic: a fixed seeded validation split carved from the training set, and a clear
    error when the files are missing and downloading is off.

    Args:
        root: directory holding (or receiving) the dataset files.
        download: download the files if missing (needs network).
        val_size: number of training images held out for validation (fixed by ``split_seed``).
        augment: standard training augmentation (CIFAR: random crop with 4-pixel padding + flip).
        device_resident: keep the training split on the accelerator and crop/flip it there in batches
            (docs/speed.md).
    """

    dataset_class: type = datasets.MNIST
    train_augmentation: list = []
    #: appended to the missing-files error (e.g. where else the data can come from)
    missing_hint: str = ""

    def __init__(
        self,
        root: str = "data",
        download: bool = True,
        val_size: NonNegativeInt = 5000,
        augment: bool = True,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = 500,
        num_workers: NonNegativeInt = 2,
        seed: int = 0,
        split_seed: int = 0,
        device_resident: bool = False,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, device_resident)
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0; got {val_size}")
        self.root, self.download, self.val_size = root, download, val_size
        self.augment, self.split_seed = augment, split_seed

    def _dataset(self, train: bool, augment: bool) -> Dataset:
        steps = (self.train_augmentation if augment else []) + [transforms.ToTensor()]
        name = self.dataset_class.__name__
        try:
            return self.dataset_class(
                self.root, train=train, download=self.download, transform=transforms.Compose(steps)
            )
        except RuntimeError as error:
            if self.download:
                raise RuntimeError(
                    f"{name}: could not download to {Path(self.root).resolve()} ({error}). With no network, copy "
                    f"the dataset files there and set download: false. {self.missing_hint}".rstrip()
                ) from error
            raise FileNotFoundError(
                f"{name}: no dataset files under {Path(self.root).resolve()} and download is off. Put the "
                f"torchvision {name} files there, or set `--data.init_args.download true` (needs network). "
                f"{self.missing_hint}".rstrip()
            ) from error

    def prepare_data(self) -> None:
        if self.download:
            self._dataset(train=True, augment=False)
            self._dataset(train=False, augment=False)

    def setup(self, stage: str | None = None) -> None:
        if self.test_dataset is not None:
            return
        train_plain = self._dataset(train=True, augment=False)
        train_aug = self._dataset(train=True, augment=self.augment) if self.augment else train_plain
        if self.val_size >= len(train_plain):
            raise ValueError(f"val_size={self.val_size} leaves no training data ({len(train_plain)} images)")
        order = torch.randperm(len(train_plain), generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size].tolist(), order[self.val_size :].tolist()
        self.train_dataset = Subset(train_aug, train_index)
        self._train_plain = Subset(train_plain, train_index)
        self.val_dataset = Subset(train_plain, val_index)
        self.test_dataset = self._dataset(train=False, augment=False)

    def resident_train_split(self) -> tuple[Tensor, Tensor]:
        """The un-augmented training images and labels (the augmentation runs on the device)."""
        if self.train_dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() did not create the train split")
        return stack_dataset(self._train_plain)

    def device_augmentation(self) -> tuple[int, float]:
        """Padding and flip probability of ``train_augmentation`` (RandomCrop, RandomHorizontalFlip only)."""
        padding, flip_p = 0, 0.0
        for step in self.train_augmentation if self.augment else []:
            if (
                isinstance(step, transforms.RandomCrop)
                and isinstance(step.padding, int)
                and step.padding_mode == "constant"
                and step.fill == 0
            ):
                padding = step.padding
            elif isinstance(step, transforms.RandomHorizontalFlip):
                flip_p = float(step.p)
            else:
                raise ValueError(
                    f"{type(self).__name__}: device_resident supports RandomCrop(padding=int, fill 0) and "
                    f"RandomHorizontalFlip only; got {step!r}. Use device_resident: false."
                )
        return padding, flip_p


class FashionMNISTDataModule(TorchvisionDataModule):
    """Fashion-MNIST (Xiao et al. 2017), 1x28x28, 10 classes, from torchvision's files (no package on the
    registry ships them; docs/mnist.md)."""

    dataset_class = datasets.FashionMNIST
    num_classes = 10
    mean = (0.2860,)
    std = (0.3530,)
    missing_hint = "No package on PyPI ships Fashion-MNIST (docs/mnist.md): use torchvision's files."


class KMNISTDataModule(TorchvisionDataModule):
    """Kuzushiji-MNIST (Clanuwat et al. 2018), 1x28x28, 10 classes, from torchvision's files (no package on
    the registry ships them; docs/mnist.md)."""

    dataset_class = datasets.KMNIST
    num_classes = 10
    mean = (0.1918,)
    std = (0.3483,)
    missing_hint = "No package on PyPI ships KMNIST (docs/mnist.md): use torchvision's files."


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10, 3x32x32, 10 classes, crop+flip augmentation."""

    dataset_class = datasets.CIFAR10
    train_augmentation = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2471, 0.2435, 0.2616)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100, 3x32x32, 100 classes, crop+flip augmentation."""

    dataset_class = datasets.CIFAR100
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
