"""A checkpoint is published only after the metrics of its epoch reach the logs: a kill right after Lightning
writes ``last.ckpt`` at the end of an epoch loses no point of the TensorBoard curves (issue 23, case 8;
docs/faults.md)."""

from __future__ import annotations

from pathlib import Path

import torch
from fault_runs import BATCHES, EPOCHS, fit_config, record, run, run_dir, scalars, series_differences
from harness import load, write

TOLERANCE = 1e-6


def test_a_kill_right_after_last_ckpt_loses_no_logged_point(uninterrupted: Path, tmp_path: Path) -> None:
    config = load(fit_config(tmp_path, EPOCHS, BATCHES))
    # after the ModelCheckpoint of fit_config saved epoch 1 (and before epoch 1's train/loss is logged): SIGKILL
    config["trainer"]["callbacks"].append({"class_path": "fault_marker.KillAfterCheckpoint", "init_args": {"epoch": 1}})
    killed = write(config, tmp_path / "killed.yaml")
    first = run(["fit", "--config", str(killed)], tmp_path)
    assert first.returncode == -9, first.stderr[-3000:]
    folder = run_dir(tmp_path)
    last = folder / "checkpoints" / "last.ckpt"
    assert last.exists(), "no last.ckpt left by the killed run"
    resumed_from = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    logged_before = {tag: [s for s, _ in series] for tag, series in scalars(folder).items()}

    result = run(["fit", "--config", str(fit_config(tmp_path, EPOCHS, BATCHES)), "--ckpt_path", str(last)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = series_differences(scalars(folder), scalars(run_dir(uninterrupted)), TOLERANCE)
    curves = "; ".join(logged)
    record(
        fault="SIGKILL right after Lightning wrote the end-of-epoch checkpoint of epoch 1 of 3 (before that epoch's "
        "`train/loss` was logged), then `fit --ckpt_path last.ckpt`",
        happened=f"`last.ckpt` left by the killed run is epoch {resumed_from}'s; the resumed run trained epoch 1 "
        f"again; TensorBoard curves {'identical to the uninterrupted run' if not logged else 'DIFFERENT: ' + curves}"
        " (before: `last.ckpt` was epoch 1's and epoch 1's `train/loss` point was missing)",
        handled="`AtomicCheckpointIO` holds checkpoints written during fit as temporary files; "
        "`PublishCheckpointsAfterLogs` renames them after the loggers are flushed, at the next batch or epoch start "
        "or at the end of training",
    )
    assert not logged, f"the logged curves differ from the uninterrupted run: {logged}"
    assert resumed_from == 0, f"last.ckpt of epoch {resumed_from} was published before its epoch was logged"
    assert "train/loss" in logged_before
    assert not list(folder.glob("checkpoints/*.tmp")) and not list(folder.glob("checkpoints/.*.tmp"))
