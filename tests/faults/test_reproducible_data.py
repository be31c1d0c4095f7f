"""Training order and augmentations are functions of (seed, epoch), for every DataModule and under DDP
sharding, so that a resumed run sees the data of the uninterrupted run (docs/faults.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_vision_files import write_fake_cifar, write_fake_mnist
from torch.utils.data import Dataset, DistributedSampler, TensorDataset
from torchvision.datasets import cifar

from robustlit.data import (
    CIFAR10DataModule,
    DigitsDataModule,
    MNISTDataModule,
    RobustDataModule,
    TsiprasDataModule,
)
from robustlit.data.epoch_order import EpochSeededDataset, EpochShuffle
from robustlit.utils.seeding import BatchSeed, mix_seed


def _order(sampler: EpochShuffle, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return [index for _, index in sampler]


def test_order_is_a_function_of_seed_and_epoch_only() -> None:
    data = TensorDataset(torch.arange(50))
    first, fresh = EpochShuffle(data, seed=3), EpochShuffle(data, seed=3)
    orders = [_order(first, epoch) for epoch in range(3)]
    assert sorted(orders[0]) == list(range(50))
    assert orders[0] != orders[1] != orders[2]  # a new order every epoch
    assert _order(fresh, 2) == orders[2]  # a fresh sampler (a resumed process) at epoch 2: the same order
    assert _order(EpochShuffle(data, seed=4), 2) != orders[2]


def test_ddp_shards_are_disjoint_cover_everything_and_are_not_rewrapped_by_lightning() -> None:
    data = TensorDataset(torch.arange(51))
    shards = [_order(EpochShuffle(data, seed=0, num_replicas=2, rank=r), 5) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 26  # padded by one repeated index, like DistributedSampler
    assert set(shards[0]) | set(shards[1]) == set(range(51))
    assert len(set(shards[0]) & set(shards[1])) <= 1
    # Lightning replaces or wraps a training sampler under DDP unless it is a DistributedSampler, and calls
    # set_epoch on it at every epoch start (lightning.fabric.utilities.data._set_sampler_epoch)
    assert isinstance(EpochShuffle(data), DistributedSampler)


class _Noisy(Dataset):
    """Item i plus uniform noise from torch's global generator (like a random crop or flip)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        return index + torch.rand(3)


def test_augmentation_randomness_depends_on_seed_epoch_and_index_not_on_history() -> None:
    data = EpochSeededDataset(_Noisy(), seed=1)
    torch.manual_seed(123)
    a = data[(2, 7)]
    state = torch.get_rng_state()
    torch.manual_seed(999)  # another position of the global stream (another worker, a resumed process)
    assert torch.equal(data[(2, 7)], a)
    assert not torch.equal(data[(3, 7)], a) and not torch.equal(data[(2, 6)] - 6 + 7, a)
    torch.manual_seed(123)
    data[(2, 7)]
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left untouched


def _datamodule(name: str, root: Path) -> RobustDataModule:
    if name == "digits":
        return DigitsDataModule(batch_size=32)
    if name == "tsipras":
        return TsiprasDataModule(d=4, n_train=64, n_val=8, n_test=8, batch_size=16)
    if name == "mnist":
        write_fake_mnist(root)
        return MNISTDataModule(root=str(root), download=False, val_size=10, num_workers=0, batch_size=8)
    write_fake_cifar(root)  # random crop + flip: the augmentation draws must replay too
    return CIFAR10DataModule(root=str(root), download=False, val_size=20, num_workers=0, batch_size=8)


@pytest.mark.parametrize("name", ["digits", "tsipras", "mnist", "cifar10"])
def test_every_datamodule_replays_epoch_e_identically_in_a_new_process(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torchvision verifies CIFAR files by MD5; the fake files are real-format but not the real bytes
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())

    def first_batch(epoch: int, global_seed: int) -> torch.Tensor:
        module = _datamodule(name, tmp_path)
        module.setup("fit")
        loader = module.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
        torch.manual_seed(global_seed)  # wherever the global stream happens to be
        return next(iter(loader))[0]

    assert torch.equal(first_batch(2, 0), first_batch(2, 1))
    assert not torch.equal(first_batch(1, 0), first_batch(2, 0))


def test_batch_seed_reseeds_from_seed_epoch_and_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    class Trainer:
        current_epoch, global_rank = 4, 0

    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    BatchSeed().on_train_batch_start(Trainer(), None, None, 2)  # type: ignore[arg-type]
    drawn = torch.rand(2)
    torch.manual_seed(mix_seed(7, 4, 2, 0))
    assert torch.equal(torch.rand(2), drawn)
    BatchSeed(seed=8).on_train_batch_start(Trainer(), None, None, 2)  # type: ignore[arg-type]
    assert not torch.equal(torch.rand(2), drawn)
