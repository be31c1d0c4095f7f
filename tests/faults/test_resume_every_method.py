"""Every shipped digits method, stopped after epoch 1 of 3 and resumed from ``last.ckpt`` in the same process,
ends with the weights and buffers (per-example scores, running normalisers) of the uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fault_runs import record
from harness import CONFIGS, load, shrink, write

from robustlit.cli import main

#: mixed.yaml needs two trained checkpoints; it has no training loop of its own to resume
METHODS = sorted(p.stem for p in (CONFIGS / "digits").glob("*.yaml") if p.stem != "mixed")


def _config(name: str, tmp: Path, stop_after: int | None) -> Path:
    config = shrink(load(CONFIGS / "digits" / f"{name}.yaml"), tmp)
    config["test_after_fit"] = False
    config["trainer"].update(max_epochs=3, limit_train_batches=3, limit_val_batches=2)
    config["data"]["init_args"]["batch_size"] = 16
    model = config["model"]["init_args"]
    if model.get("lr_scheduler"):
        model["lr_scheduler"]["init_args"]["T_max"] = 3
    for key in ("begin_epoch", "rescore_every_n_epochs", "warmup_epochs"):  # let the schedules act in 3 epochs
        if key in model:
            model[key] = 1
    callbacks = [c for c in config["trainer"].get("callbacks") or [] if "Checkpoint" not in c["class_path"]]
    callbacks.append(
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": None, "save_last": True}}
    )
    if stop_after is not None:
        callbacks.append({"class_path": "fault_marker.StopAfter", "init_args": {"epoch": stop_after}})
    config["trainer"]["callbacks"] = callbacks
    return write(config, tmp / f"{name}.yaml")


def _last(tmp: Path) -> dict:
    return torch.load(tmp / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)


@pytest.mark.parametrize("name", METHODS)
def test_stop_and_resume_matches_the_uninterrupted_run(name: str, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    main(["fit", "--config", str(_config(name, whole, None))])
    main(["fit", "--config", str(_config(name, parts, 1))])
    stopped = _last(parts)
    assert stopped["global_step"] == 6, "the interrupted run did not stop after its second epoch"
    ckpt = str(parts / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt")
    main(["fit", "--config", str(_config(name, parts, None)), "--ckpt_path", ckpt])
    want, got = _last(whole), _last(parts)
    assert got["global_step"] == want["global_step"] == 9
    different = {}
    for key, value in want["state_dict"].items():
        other = got["state_dict"][key]
        same = torch.equal(value, other)
        if value.is_floating_point():
            same = torch.allclose(value, other, rtol=0, atol=1e-6, equal_nan=True)  # unscored examples are NaN
        if not same:
            different[key] = (value.double() - other.double()).abs().nan_to_num(float("inf")).max().item()
    record(
        fault=f"`configs/digits/{name}.yaml` (shrunk) stopped after epoch 1 of 3, resumed from `last.ckpt`",
        happened="the resumed run trained epoch 2 in a fresh Trainer (same process)",
        handled=f"final weights and buffers {'equal' if not different else 'DIFFERENT: ' + str(different)} to the "
        "uninterrupted run's (tolerance 1e-6)",
    )
    assert not different, f"{name}: resumed run differs from the uninterrupted one: {different}"
    changed = [k for k in want["state_dict"] if not torch.equal(want["state_dict"][k], stopped["state_dict"][k])]
    assert changed, "the third epoch changed nothing: the comparison could not fail"
