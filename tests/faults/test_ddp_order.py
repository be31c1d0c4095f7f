"""Under a real 2-process DDP fit, Lightning keeps robustlit's training sampler and sets its epoch: each rank
sees its shard of the (seed, epoch) permutation, a new one every epoch (docs/faults.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from ddp_order_script import SIZE
from fault_runs import record
from torch.utils.data import TensorDataset

from robustlit.data.epoch_order import EpochShuffle

SCRIPT = Path(__file__).with_name("ddp_order_script.py")


def test_ddp_ranks_see_their_shard_of_the_epoch_permutation(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    subprocess.run([sys.executable, str(SCRIPT), "2", str(out)], check=True, env=env, timeout=600, cwd=tmp_path)
    seen = [json.loads(Path(f"{out}.rank{rank}").read_text()) for rank in (0, 1)]
    data = TensorDataset(torch.arange(SIZE))
    record(
        fault="2-process DDP fit (gloo, CPU), 3 epochs, each rank recording the examples it trained on",
        happened="Lightning kept robustlit's `EpochShuffle` (a DistributedSampler) and called its `set_epoch`",
        handled="per epoch the ranks' shards partition the data and equal the `(seed, epoch)` permutation's "
        "shards computed offline; a resumed DDP run therefore sees the same order",
    )
    for epoch in range(3):
        shards = [seen[rank][str(epoch)] for rank in (0, 1)]
        assert sorted(shards[0] + shards[1]) == list(range(SIZE)), f"epoch {epoch}: not one pass over the data"
        for rank in (0, 1):
            sampler = EpochShuffle(data, seed=5, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            assert shards[rank] == [i for _, i in sampler], f"rank {rank}, epoch {epoch}: not the expected order"
    assert seen[0]["0"] != seen[0]["1"] != seen[0]["2"]
