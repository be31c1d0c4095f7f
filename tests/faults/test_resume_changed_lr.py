"""Resume with a changed learning rate (the NaN-loss advice): the configured value is applied, not the
stored optimizer's, and the run's config records what ran."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from fault_runs import record
from harness import CONFIGS, load, shrink, write

from robustlit.cli import main


def _config(tmp: Path, lr: float, epochs: int, stop_after: int | None) -> Path:
    config = shrink(load(CONFIGS / "digits" / "standard.yaml"), tmp)
    config["test_after_fit"] = False
    config["trainer"].update(max_epochs=epochs, limit_train_batches=2, limit_val_batches=1)
    model = config["model"]["init_args"]
    model["optimizer"]["init_args"]["lr"] = lr
    model["lr_scheduler"]["init_args"]["T_max"] = epochs
    callbacks = [{"class_path": "fault_marker.StopAfter", "init_args": {"epoch": stop_after}}] if stop_after else []
    marker = {"marker": str(tmp / "batches.txt"), "metrics": str(tmp / "metrics.json")}
    config["trainer"]["callbacks"] = [*callbacks, {"class_path": "fault_marker.BatchMarker", "init_args": marker}]
    return write(config, tmp / f"lr{lr}.yaml")


def test_resume_with_a_lower_learning_rate_applies_it(tmp_path: Path) -> None:
    main(["fit", "--config", str(_config(tmp_path, 0.002, 4, stop_after=1))])
    ckpt = tmp_path / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt"
    cli = main(["fit", "--config", str(_config(tmp_path, 0.0005, 4, None)), "--ckpt_path", str(ckpt)])
    optimizer = cli.trainer.optimizers[0]
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    # the lr of the resumed epochs 2 and 3, as the marker saw it during training
    lines = (tmp_path / "batches.txt").read_text().splitlines()
    got: dict[int, float] = {}
    for line in lines:  # the first batch of each epoch
        got.setdefault(int(line.split()[0][6:]), float(line.split()[2][3:]))
    # the cosine schedule of the configured rate (T_max=4) at epochs 2 and 3; the stored one gives 0.001, 0.000293
    expected = {e: 0.0005 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (2, 3)}
    changes = [c for c in cli.trainer.callbacks if type(c).__name__ == "ConfiguredOptimizerOnResume"][0].changes
    recorded = (tmp_path / "runs" / "cli" / "version_0" / "config.yaml").read_text()
    record(
        fault="fit with Adam lr 0.002 stopped after epoch 1 of 4, resumed with `--ckpt_path last.ckpt` and lr 0.0005",
        happened=f"applied on resume: {'; '.join(changes)} (before: the stored 0.002 trained on silently while "
        "config.yaml said 0.0005)",
        handled="`ConfiguredOptimizerOnResume` (added by the CLI) applies the configured optimizer and schedule "
        "settings after Lightning's restore; moments and step counters are kept",
    )
    assert changes and any("base lr: 0.002 -> 0.0005" in c for c in changes), changes
    assert optimizer.param_groups[0]["initial_lr"] == 0.0005 and scheduler.base_lrs == [0.0005]
    assert got[0] == 0.002 and all(abs(got[e] - expected[e]) < 1e-8 for e in expected), (got, expected)
    assert "lr: 0.0005" in recorded


def test_resume_with_the_same_settings_changes_nothing(tmp_path: Path) -> None:
    main(["fit", "--config", str(_config(tmp_path, 0.002, 3, stop_after=1))])
    ckpt = tmp_path / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt"
    cli = main(["fit", "--config", str(_config(tmp_path, 0.002, 3, None)), "--ckpt_path", str(ckpt)])
    changes = [c for c in cli.trainer.callbacks if type(c).__name__ == "ConfiguredOptimizerOnResume"][0].changes
    assert changes == []


def _cyclic_config(tmp: Path, lr: float, stop_after: int | None) -> Path:
    """digits FGSM-RS with the cyclic learning rate (a callback, not an lr_scheduler), 4 epochs of 2 batches."""
    config = shrink(load(CONFIGS / "digits" / "fgsm_rs.yaml"), tmp)
    config["test_after_fit"] = False
    config["trainer"].update(max_epochs=4, limit_train_batches=2, limit_val_batches=1)
    config["model"]["init_args"]["optimizer"]["init_args"]["lr"] = lr
    callbacks = [{"class_path": "robustlit.callbacks.CyclicLearningRate", "init_args": {"peak": 0.4}}]
    if stop_after is not None:
        callbacks.append({"class_path": "fault_marker.StopAfter", "init_args": {"epoch": stop_after}})
    marker = {"marker": str(tmp / "batches.txt"), "metrics": str(tmp / "metrics.json")}
    config["trainer"]["callbacks"] = [*callbacks, {"class_path": "fault_marker.BatchMarker", "init_args": marker}]
    return write(config, tmp / f"cyclic{lr}.yaml")


def test_resume_of_a_cyclic_schedule_follows_the_configured_rate(tmp_path: Path) -> None:
    from robustlit.callbacks.cyclic_lr import triangular_factor

    main(["fit", "--config", str(_cyclic_config(tmp_path, 0.002, stop_after=1))])
    ckpt = tmp_path / "stopped.ckpt"  # the resumed runs write their own last.ckpt
    shutil.copy(tmp_path / "runs" / "cli" / "version_0" / "checkpoints" / "last.ckpt", ckpt)
    same = main(["fit", "--config", str(_cyclic_config(tmp_path, 0.002, None)), "--ckpt_path", str(ckpt)])
    changes = [c for c in same.trainer.callbacks if type(c).__name__ == "ConfiguredOptimizerOnResume"][0].changes
    assert changes == []  # before: "base lr: 0.00187 -> 0.002", the cyclic rate of the moment taken for a setting
    (tmp_path / "batches.txt").unlink()
    lower = main(["fit", "--config", str(_cyclic_config(tmp_path, 0.0005, None)), "--ckpt_path", str(ckpt)])
    changes = [c for c in lower.trainer.callbacks if type(c).__name__ == "ConfiguredOptimizerOnResume"][0].changes
    assert any("base lr: 0.002 -> 0.0005" in c for c in changes), changes
    # epochs 2 and 3 (steps 4..7 of 8) on the configured rate's triangle; before: the stored 0.002's triangle
    seen = [float(line.split()[2][3:]) for line in (tmp_path / "batches.txt").read_text().splitlines()]
    expected = [0.0005 * triangular_factor(step, 8, 0.4) for step in range(4, 8)]
    assert len(seen) == 4 and all(abs(a - b) < 1e-9 for a, b in zip(seen, expected, strict=True)), (seen, expected)
