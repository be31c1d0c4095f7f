"""The accelerator-resident training path (docs/speed.md) draws the DataLoader path's batches: same order,
shapes and labels; crops and flips from the same distribution; (seed, epoch) semantics kept."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torchvision.datasets import cifar

from robustlit.data import CIFAR10DataModule, DigitsDataModule
from robustlit.data.device_resident import random_crop_flip
from robustlit.methods import Standard
from robustlit.models import SmallCNN

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from fake_vision_files import write_fake_cifar  # noqa: E402


def _batches(loader: object, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
    return list(loader)


def test_digits_device_path_gives_the_dataloader_batches() -> None:
    cpu, resident = (
        DigitsDataModule(batch_size=100, seed=3),
        DigitsDataModule(batch_size=100, seed=3, device_resident=True),
    )
    cpu.setup("fit"), resident.setup("fit")
    for epoch in (0, 1):
        expected = _batches(cpu.train_dataloader(), epoch)
        got = _batches(resident.train_dataloader(), epoch)
        assert [x.shape for x, _ in got] == [x.shape for x, _ in expected]  # 12 x 100 + 57
        assert len(got) == len(resident.train_dataloader()) == 13
        for (xa, ya), (xb, yb) in zip(expected, got, strict=True):
            assert torch.equal(ya, yb) and torch.equal(xa, xb)  # no augmentation on digits: the very same batches
    assert not torch.equal(
        _batches(resident.train_dataloader(), 0)[0][1], _batches(resident.train_dataloader(), 1)[0][1]
    )


def test_crop_flip_is_a_shift_and_flip_of_each_image_with_the_right_frequencies() -> None:
    torch.manual_seed(0)
    x = torch.rand(400, 3, 8, 8) + 0.1  # no zeros inside the image: the zero padding is recognisable
    out = random_crop_flip(x, padding=2, flip_p=0.5, generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets, flips = [], 0
    for i in range(len(x)):
        matches = [
            (top, left, flip)
            for top in range(5)
            for left in range(5)
            for flip in (False, True)
            if torch.equal(out[i], (lambda c: c.flip(2) if flip else c)(padded[i, :, top : top + 8, left : left + 8]))
        ]
        assert matches, f"image {i} is no crop/flip of its input"
        top, left, flip = matches[0]
        offsets.append(5 * top + left)
        flips += flip
    counts = torch.bincount(torch.tensor(offsets), minlength=25).float()
    assert counts.min() > 0 and abs(flips / len(x) - 0.5) < 0.1  # 25 offsets all drawn, half flipped
    assert counts.max() / counts.mean() < 2.0


def test_cifar_device_path_same_batches_up_to_augmentation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    write_fake_cifar(tmp_path)
    kwargs = {"root": str(tmp_path), "download": False, "val_size": 20, "num_workers": 0, "batch_size": 16}
    cpu, resident = CIFAR10DataModule(**kwargs), CIFAR10DataModule(**kwargs, device_resident=True)
    cpu.setup("fit"), resident.setup("fit")
    assert resident.device_augmentation() == (4, 0.5)
    expected, got = _batches(cpu.train_dataloader(), 0), _batches(resident.train_dataloader(), 0)
    assert [x.shape for x, _ in got] == [x.shape for x, _ in expected] == [(16, 3, 32, 32)] * 5
    for (_, ya), (xb, yb) in zip(expected, got, strict=True):
        assert torch.equal(ya, yb)  # same examples in every batch: same labels, same label distribution
        assert 0 <= xb.min() and xb.max() <= 1

    # the zero border of a crop appears at the rate the CPU path's RandomCrop gives it
    def border_rate(batches: list) -> float:
        x = torch.cat([b for b, _ in batches])
        return float((x[:, :, :, 0].flatten(1) == 0).all(1).float().mean())

    rates = [
        border_rate(_batches(loader, e))
        for loader in (cpu.train_dataloader(), resident.train_dataloader())
        for e in range(4)
    ]
    cpu_rate, dev_rate = sum(rates[:4]) / 4, sum(rates[4:]) / 4
    assert abs(cpu_rate - dev_rate) < 0.12, (cpu_rate, dev_rate)  # P(left offset < 4) = 4/9


def test_device_path_trains_through_lightning() -> None:
    data = DigitsDataModule(batch_size=128, device_resident=True)
    module = Standard(backbone=SmallCNN(10, 1, width=4, hidden=16), mean=data.mean, std=data.std)
    trainer = pl.Trainer(
        max_epochs=2, limit_val_batches=0, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, data)
    assert trainer.global_step == 2 * 10
    assert data.train_dataloader().sampler.epoch == 1  # Lightning set the epoch through the sampler attribute
