"""Training order and augmentation randomness as functions of (seed, epoch), so that resume reproduces.

A DataLoader built with ``shuffle=True`` and a generator seeded once replays epoch 0's order after a
resume (the generator is rebuilt from the seed), and augmentations in worker processes draw from
per-worker streams whose position depends on the whole history of the run. Here instead

- :class:`EpochShuffle` permutes the indices with a generator seeded by ``(seed, epoch)`` and shards
  them over DDP ranks exactly as :class:`~torch.utils.data.DistributedSampler` does (it *is* one, so
  Lightning neither wraps nor replaces it, and calls its ``set_epoch`` at the start of every epoch,
  with the restored epoch after a resume);
- it yields ``(epoch, index)`` keys, and :class:`EpochSeededDataset` draws item ``index`` of epoch
  ``epoch`` under torch's RNG seeded by ``(seed, epoch, index)``: random crops and flips no longer
  depend on the number of workers, on persistent workers, or on an interruption. See ``docs/faults.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

from robustlit.utils.seeding import mix_seed


class EpochSeededDataset(Dataset):
    """Wrap ``dataset`` so that key ``(epoch, index)`` returns ``dataset[index]`` drawn under a torch RNG
    seeded by ``(seed, epoch, index)`` (the global stream is left untouched); a plain index passes through."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            # Only the CPU generator (what CPU transforms draw from, and what fork_rng restores).
            # torch.manual_seed would also queue a lazy CUDA/XPU/MTIA seeding call with a formatted stack
            # trace per item while CUDA is uninitialised (about 15% of a digits TRADES epoch), and on a GPU machine
            # it would reseed the CUDA generator, which fork_rng(devices=[]) does not restore.
            torch.random.default_generator.manual_seed(mix_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochShuffle(DistributedSampler):
    """A shuffling sampler whose order is a function of ``(seed, epoch)`` only; yields ``(epoch, index)``.

    With ``num_replicas=1`` (no process group needed) every epoch is one permutation of all indices;
    under DDP each rank takes every ``num_replicas``-th index of the same permutation (padded by
    repetition to equal length, as DistributedSampler does for training).
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]
        padding = self.total_size - len(order)
        order += (order * (padding // max(len(order), 1) + 1))[:padding]
        epoch = self.epoch
        return iter([(epoch, i) for i in order[self.rank : self.total_size : self.num_replicas]])


__all__ = ["EpochSeededDataset", "EpochShuffle"]
