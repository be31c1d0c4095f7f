"""Exact sharding of evaluation examples across processes: no padding, every example counted once.

Lightning's DistributedSampler pads uneven shards with repeated examples, which biases a reported
accuracy (docs/contracts.md). Here whole *batches* of a fixed global layout are dealt to ranks
round-robin, so each batch (and its seeded randomness) is identical whatever the world size, and a
2-process run reproduces a 1-process run exactly.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_layout(num_examples: int, batch_size: int) -> list[list[int]]:
    """The global batches: [0..B), [B..2B), ... over the first ``num_examples`` indices."""
    return [list(range(s, min(s + batch_size, num_examples))) for s in range(0, num_examples, batch_size)]


def my_batches(num_examples: int, batch_size: int) -> list[tuple[int, list[int]]]:
    """(global batch id, indices) of the batches this rank evaluates."""
    rank, size = world()
    return [(i, b) for i, b in enumerate(batch_layout(num_examples, batch_size)) if i % size == rank]


def gather_objects(obj: Any) -> list[Any]:
    """all_gather_object on every rank (never guard this call by rank: it is a collective)."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out
