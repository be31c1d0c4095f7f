"""SIGKILL a real ``robustlit fit`` in the middle of an epoch, resume it from ``last.ckpt``: the resumed
run ends with the weights and metrics of the uninterrupted run, in the same run folder (docs/faults.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from fault_runs import (
    BATCHES,
    EPOCHS,
    fit_config,
    marker_reached,
    max_weight_difference,
    metrics,
    record,
    run,
    run_and_kill,
    run_dir,
    scalars,
    series_differences,
    weights,
)

TOLERANCE = 1e-6


def test_sigkill_mid_epoch_then_resume_reproduces_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    config = fit_config(tmp_path, EPOCHS, BATCHES)
    status = run_and_kill(["fit", "--config", str(config)], tmp_path, marker_reached(tmp_path, epoch=2, batch=1))
    assert status == -9, f"the run was not killed (exit status {status}); see {tmp_path / 'killed-run.log'}"
    folder = run_dir(tmp_path)
    last = folder / "checkpoints" / "last.ckpt"
    assert last.exists(), "no last.ckpt after two finished epochs"
    resumed_from = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert resumed_from == 1, f"killed after the checkpoint of epoch {resumed_from}, not mid-epoch 2"
    killed_copy = tmp_path / "killed-last.ckpt"
    shutil.copy(last, killed_copy)

    result = run(["fit", "--config", str(config), "--ckpt_path", str(last)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    assert run_dir(tmp_path) == folder, "the resumed run logged into a new version folder"
    assert (folder / "checkpoints" / "last.ckpt").exists()
    final = weights(folder / "checkpoints" / "last.ckpt")
    expected = weights(run_dir(uninterrupted) / "checkpoints" / "last.ckpt")
    difference = max_weight_difference(final, expected)
    # the comparison can fail: the checkpoint the run was resumed from is one epoch short
    assert max_weight_difference(weights(killed_copy), expected) > 1e-3
    got, want, nan = metrics(tmp_path), metrics(uninterrupted), float("nan")
    different = {k: (got.get(k), v) for k, v in want.items() if got.get(k) is None or abs(got[k] - v) > TOLERANCE}
    logged = series_differences(scalars(folder), scalars(run_dir(uninterrupted)), TOLERANCE)
    record(
        fault="SIGKILL during epoch 2 of 3 (`robustlit fit`, digits TRADES, 4 batches/epoch)",
        happened=f"exit status {status}; `last.ckpt` of epoch {resumed_from} left in `{folder.name}/checkpoints/`",
        handled=(
            f"`fit --ckpt_path .../last.ckpt` continued in the same `{folder.name}`; final weights differ from "
            f"the uninterrupted run by at most {difference:.1e}; {len(want) - len(different)}/{len(want)} final "
            f"metrics equal (e.g. val/acc {got.get('val/acc', nan):.4f} vs {want.get('val/acc', nan):.4f}); "
            f"TensorBoard curves {'identical' if not logged else 'DIFFERENT: ' + '; '.join(logged)}"
        ),
    )
    assert difference <= TOLERANCE, f"final weights differ by {difference:.3g}"
    assert not different, f"final metrics differ (resumed, uninterrupted): {different}"
    assert not logged, f"the logged curves differ: {logged}"
