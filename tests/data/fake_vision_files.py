"""Write tiny MNIST / CIFAR files in their real on-disk formats (idx-ubyte; pickled CIFAR batches)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_fake_mnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> None:
    """MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision reads them."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def write_fake_cifar(root: Path, num_classes: int = 10, per_batch: int = 20, seed: int = 0) -> None:
    """cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} or cifar-100-python/{train,test,meta}."""
    rng = np.random.default_rng(seed)

    def batch(n: int, key: str) -> dict:
        return {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            key: [int(i % num_classes) for i in range(n)],
        }

    if num_classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        files = {f"data_batch_{i}": batch(per_batch, "labels") for i in range(1, 6)}
        files["test_batch"] = batch(per_batch, "labels")
        files["batches.meta"] = {"label_names": [f"class{i}" for i in range(10)]}
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        files = {"train": batch(5 * per_batch, "fine_labels"), "test": batch(per_batch, "fine_labels")}
        files["meta"] = {"fine_label_names": [f"class{i}" for i in range(100)]}
    for name, content in files.items():
        with open(folder / name, "wb") as handle:
            pickle.dump(content, handle)
