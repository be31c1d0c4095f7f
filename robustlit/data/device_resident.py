"""The whole training set as one tensor on the accelerator, augmented there in batches (docs/speed.md).

For datasets that fit in accelerator memory (digits, MNIST, CIFAR-10/100: 45,000 x 3 x 32 x 32 float32
is 0.55 GB), a CPU DataLoader with per-image PIL augmentation is the bottleneck of a fast GPU step.
:class:`DeviceResidentLoader` keeps the images and labels on the device and, per batch, gathers the
batch, pads it with zeros, takes one random crop per image and flips each image with probability
``flip_p`` -- the distribution of torchvision's ``RandomCrop(size, padding)`` (constant zero fill) and
``RandomHorizontalFlip(p)`` used by the CPU path (He et al. 2016, sec. 4.2, the CIFAR augmentation).

Order: the same ``(seed, epoch)`` permutation and DDP sharding as the CPU path
(:class:`~robustlit.data.epoch_order.EpochShuffle`, whose ``set_epoch`` Lightning calls through the
``sampler`` attribute), so every batch holds the same examples as the DataLoader path's batch.
Augmentation: drawn from a generator seeded by ``(seed, epoch, rank, batch index)``, so a resumed run
draws the same crops; the draws differ from the CPU path's per-image ``(seed, epoch, index)`` streams
(same distribution, other samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robustlit.data.epoch_order import EpochShuffle
from robustlit.utils.seeding import mix_seed


def stack_dataset(dataset: Dataset, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """All ``(x, y)`` items of ``dataset`` as two tensors (read once, in order, on the CPU)."""
    xs, ys = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(torch.as_tensor(x))
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)


def random_crop_flip(x: Tensor, padding: int, flip_p: float, generator: torch.Generator | None = None) -> Tensor:
    """Per image: zero-pad by ``padding``, crop back to the input size at a uniform offset, flip with ``flip_p``.

    ``x`` is (B, C, H, W) on any device; one gather, no Python loop over images.
    """
    b, _, h, w = x.shape
    device = x.device
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        top = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator)
        left = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator)
        rows = (top[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (left[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (B, 1, 1, W)
        batch = torch.arange(b, device=device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if flip_p > 0:
        flip = torch.rand(b, device=device, generator=generator) < flip_p
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class DeviceResidentLoader:
    """Batches of a tensor dataset held on ``device``, in the CPU path's ``(seed, epoch)`` order.

    Args:
        x, y: the whole (un-augmented) training split, (N, ...) and (N,).
        batch_size: batch size (the last batch may be smaller, as with the DataLoader).
        device: where the tensors live and the augmentation runs.
        seed: the DataModule's seed (order and augmentation).
        padding, flip_p: random-crop padding (0: no crop) and flip probability (0: no flip).
        num_replicas, rank: DDP sharding, as :class:`EpochShuffle`.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        device: torch.device | str,
        seed: int = 0,
        padding: int = 0,
        flip_p: float = 0.0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.x, self.y = x.to(self.device), y.to(self.device)
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.padding, self.flip_p = padding, flip_p
        self.sampler = EpochShuffle(_Sized(len(y)), seed=seed, num_replicas=num_replicas, rank=rank)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.sampler.epoch
        order = torch.tensor([index for _, index in self.sampler], device=self.device)
        for batch_index, start in enumerate(range(0, len(order), self.batch_size)):
            index = order[start : start + self.batch_size]
            x = self.x[index]
            if self.padding > 0 or self.flip_p > 0:
                generator = torch.Generator(device=self.device)
                generator.manual_seed(mix_seed(self.seed, epoch, self.rank, batch_index))
                x = random_crop_flip(x, self.padding, self.flip_p, generator)
            yield x, self.y[index]


class _Sized:
    """A stand-in dataset of ``n`` items for :class:`EpochShuffle` (it needs only ``len``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


__all__ = ["DeviceResidentLoader", "random_crop_flip", "stack_dataset"]
