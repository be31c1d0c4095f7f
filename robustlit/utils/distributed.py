"""Exact sharding of evaluation examples across processes: no padding, every example counted once.

Lightning's DistributedSampler pads uneven shards with repeated examples, which biases a reported
accuracy (docs/contracts.md, exact DDP counts). Here whole *batches* of a fixed global layout are dealt to ranks
round-robin, so each batch (and its seeded randomness) is identical whatever the world size, and a
2-process run reproduces a 1-process run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


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


def gather_rows(local: list[dict[str, Tensor]], num_examples: int) -> dict[str, Tensor]:
    """Gather every rank's rows (each a dict of per-example tensors with an ``index`` column), check that the
    indices are exactly 0..n-1 once each, and return each column concatenated in index order (all ranks)."""
    rows = [row for part in gather_objects(local) for row in part]
    if not rows:
        raise RuntimeError("gather_rows: no rows at all (empty evaluation)")
    index = torch.cat([r["index"] for r in rows])
    order = index.argsort()
    if not torch.equal(index[order], torch.arange(num_examples)):
        raise RuntimeError(f"gathered examples are not exactly 0..{num_examples - 1} once each")
    return {key: torch.cat([r[key] for r in rows])[order] for key in rows[0]}


def map_sharded(
    num_examples: int, batch_size: int, fn: Callable[[int, list[int]], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """``fn(global batch id, indices)`` on this rank's whole batches, gathered into columns in index order.

    ``fn`` returns per-example tensors (first dimension ``len(indices)``) on any device; they are moved to
    the CPU. Collective under DDP: call it on every rank. The result is identical for every world size.
    """
    local = []
    for batch_id, indices in my_batches(num_examples, batch_size):
        row = {key: value.detach().cpu() for key, value in fn(batch_id, indices).items()}
        local.append({"index": torch.tensor(indices), **row})
    return gather_rows(local, num_examples)


def map_dataset(
    dataset: Dataset,
    num_examples: int,
    batch_size: int,
    fn: Callable[[int, list[int], Any], dict[str, Tensor]],
    skip: Collection[int] = (),
    num_workers: int = 0,
) -> dict[str, Tensor]:
    """:func:`map_sharded` over the first ``num_examples`` items of ``dataset``, read for ``fn``.

    ``fn(global batch id, indices, batch)`` gets each of this rank's batches as one DataLoader reads them
    (default collation; ``num_workers`` processes may prefetch), or ``None`` for a batch id in ``skip``, which is
    not read (a batch the caller already has, e.g. from a cache). Collective under DDP, like :func:`map_sharded`.
    """
    todo = [indices for batch_id, indices in my_batches(num_examples, batch_size) if batch_id not in skip]
    batches = iter(DataLoader(dataset, batch_sampler=todo, num_workers=num_workers))  # type: ignore[arg-type]

    def one_batch(batch_id: int, indices: list[int]) -> dict[str, Tensor]:
        return fn(batch_id, indices, None if batch_id in skip else next(batches))

    return map_sharded(num_examples, batch_size, one_batch)
