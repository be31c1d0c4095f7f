"""DataModules: [0, 1] inputs, fixed splits, real on-disk formats, clear errors (docs/contracts.md, pixel space)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_vision_files import write_fake_cifar, write_fake_mnist
from torchvision.datasets import cifar

from robustlit.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    MNISTDataModule,
    TsiprasDataModule,
    check_in_bounds,
)


@pytest.fixture
def skip_cifar_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision verifies CIFAR files by MD5; our tiny files are real-format but not the real bytes."""
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())


def test_digits_split_is_fixed_stratified_and_in_unit_box() -> None:
    a, b = DigitsDataModule(), DigitsDataModule()
    a.setup(), b.setup()
    sizes = [len(d) for d in (a.train_dataset, a.val_dataset, a.test_dataset)]
    assert sizes == [1257, 270, 270]
    assert torch.equal(a.test_dataset.tensors[0], b.test_dataset.tensors[0])
    x, y = a.train_dataset.tensors
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    assert torch.bincount(a.test_dataset.tensors[1]).min() >= 25  # stratified: every class present
    train = set(map(tuple, a.train_dataset.tensors[0].flatten(1).tolist()))
    assert not any(tuple(v) in train for v in a.test_dataset.tensors[0].flatten(1).tolist()[:50])


def test_tsipras_statistics() -> None:
    data = TsiprasDataModule(d=100, p=0.9, n_train=20000, n_val=10, n_test=10)
    data.setup()
    x, y = data.train_dataset.tensors
    sign = (y.float() * 2 - 1).unsqueeze(1)
    assert (x[:, :1] * sign == 1).float().mean().item() == pytest.approx(0.9, abs=0.01)
    assert (x[:, 1:] * sign).mean().item() == pytest.approx(data.eta, abs=0.01)
    assert data.adversarial_eps == pytest.approx(2 * 6 / 10)


def test_mnist_loads_real_format_files(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    data = MNISTDataModule(root=str(tmp_path), download=False, val_size=10, num_workers=0, batch_size=8)
    data.setup("fit")
    assert (len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)) == (50, 10, 20)
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("module, classes", [(CIFAR10DataModule, 10), (CIFAR100DataModule, 100)])
def test_cifar_loads_real_format_files(tmp_path: Path, skip_cifar_checksums: None, module: type, classes: int) -> None:
    write_fake_cifar(tmp_path, num_classes=classes)
    data = module(root=str(tmp_path), download=False, val_size=20, num_workers=0, batch_size=4)
    data.setup("fit")
    assert len(data.train_dataset) == 80 and len(data.test_dataset) == 20
    x, _ = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert data.num_classes == classes


def test_missing_dataset_names_directory_and_flag(tmp_path: Path) -> None:
    data = CIFAR10DataModule(root=str(tmp_path / "nowhere"), download=False, num_workers=0)
    with pytest.raises(FileNotFoundError) as info:
        data.setup("fit")
    assert str((tmp_path / "nowhere").resolve()) in str(info.value)
    assert "download" in str(info.value)


def test_normalised_batch_is_refused_with_explanation() -> None:
    with pytest.raises(ValueError, match="normalisation is the first layer of the model"):
        check_in_bounds(torch.randn(4, 3, 8, 8), (0.0, 1.0), "MyDataModule")
    check_in_bounds(torch.randn(4, 10), None, "features")  # unbounded domain: accepted


def test_bad_split_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        DigitsDataModule(val_fraction=0.6, test_fraction=0.5)
