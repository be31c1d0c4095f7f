"""Run the real ``robustlit`` console script as a cluster job would meet a fault: killed with SIGKILL at a
known point, then rerun. Shared by the fault tests and ``tests/faults/fault_table.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from harness import CONFIGS, load, shrink, write

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONSOLE_SCRIPT = Path(sys.executable).parent / "robustlit"
#: the shrunk fit runs: epochs x batches of 16 digits
EPOCHS, BATCHES = 3, 4
#: when set, tests append one JSON row per fault scenario to this file (read by fault_table.py)
TABLE_ENV = "ROBUSTLIT_FAULT_TABLE"


def env() -> dict[str, str]:
    """The subprocess environment: one thread, this checkout and the marker callback importable."""
    path = os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def command(*args: str) -> list[str]:
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"the console script is not installed next to {sys.executable}: run `make install`")
    return [str(CONSOLE_SCRIPT), *args]


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``robustlit ARGS`` to completion."""
    return subprocess.run(
        command(*args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_and_kill(args: list[str], cwd: Path, ready: Callable[[], bool], timeout: float = 300) -> int:
    """Start ``robustlit ARGS``; as soon as ``ready()`` holds, SIGKILL it. Returns the exit status
    (``-9`` when killed; anything else means the run ended before the fault could be injected)."""
    log = (cwd / "killed-run.log").open("w")
    process = subprocess.Popen(command(*args), cwd=cwd, env=env(), stdout=log, stderr=subprocess.STDOUT)
    start = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - start < timeout:
            if ready():
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


def fit_config(tmp: Path, epochs: int = 3, batches: int = 4) -> Path:
    """The digits TRADES demo shrunk to ``epochs`` x ``batches`` batches of 16, a checkpoint every epoch
    (an explicit ModelCheckpoint: ``last.ckpt`` and the newest ``epoch=E-step=S.ckpt``) and the marker."""
    config = shrink(load(CONFIGS / "digits" / "trades.yaml"), tmp)
    config["test_after_fit"] = False
    config["trainer"].update(max_epochs=epochs, limit_train_batches=batches, limit_val_batches=2)
    config["data"]["init_args"]["batch_size"] = 16
    config["model"]["init_args"]["lr_scheduler"]["init_args"]["T_max"] = epochs
    evaluation = config["trainer"]["callbacks"][0]["init_args"]
    evaluation.update(num_examples=32, batch_size=16)
    config["trainer"]["callbacks"] += [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"monitor": None, "save_last": True, "every_n_epochs": 1},
        },
        {
            "class_path": "fault_marker.BatchMarker",
            "init_args": {"marker": str(tmp / "batches.txt"), "metrics": str(tmp / "metrics.json")},
        },
    ]
    return write(config, tmp / "fit.yaml")


def evaluation_config(tmp: Path, cache_dir: Path) -> Path:
    """The same run's config for ``robustlit test``: PGD-50 on all 270 test digits in batches of 8 (34
    batches, a few seconds), finished batches cached under ``cache_dir``."""
    config = load(fit_config(tmp))
    callbacks = config["trainer"]["callbacks"]
    # one evaluation, at the test stage (the demo's own test-stage evaluation, with AutoAttack, is dropped)
    others = [c for c in callbacks[1:] if not c["class_path"].endswith("AdversarialEvaluation")]
    config["trainer"]["callbacks"] = [callbacks[0], *others]
    evaluation = callbacks[0]["init_args"]
    evaluation.update(num_examples=None, batch_size=8, cache_dir=str(cache_dir), print_table=False, stages=["test"])
    evaluation["attacks"] = [{**evaluation["attacks"][0], "steps": 50}]
    # evaluations honour limit_test_batches: evaluate the whole split
    config["trainer"]["limit_test_batches"] = 1.0
    return write(config, tmp / "test.yaml")


def cached_batches(cache_dir: Path) -> dict[Path, tuple[int, int]]:
    """Finished batches in an AdversarialEvaluation cache: path -> (inode, mtime in ns)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache_dir.rglob("batch*.pt")}


def evaluation_result(tmp: Path) -> dict[str, Any]:
    """The newest ``adversarial_evaluation_test.json`` under ``tmp/runs``."""
    paths = sorted(tmp.glob("runs/cli/version_*/adversarial_evaluation_test.json"), key=lambda p: p.stat().st_mtime)
    assert paths, f"no adversarial_evaluation_test.json under {tmp / 'runs'}"
    return json.loads(paths[-1].read_text())


def run_dir(tmp: Path) -> Path:
    """The single version folder of the run under ``tmp`` (fails if there are several)."""
    versions = sorted((tmp / "runs" / "cli").glob("version_*"))
    assert len(versions) == 1, f"expected one run folder, found {[v.name for v in versions]}"
    return versions[0]


def marker_reached(tmp: Path, epoch: int, batch: int) -> Callable[[], bool]:
    marker = tmp / "batches.txt"
    line = f"epoch={epoch} batch={batch}"
    return lambda: marker.exists() and line in marker.read_text()


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def metrics(tmp: Path) -> dict[str, float]:
    return json.loads((tmp / "metrics.json").read_text())


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series TensorBoard shows for a run folder (as TensorBoard reads it: events that a
    later session purged are dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def series_differences(got: dict, want: dict, tolerance: float) -> list[str]:
    """Tags whose (step, value) series differ."""
    out = [f"{tag}: missing" for tag in want if tag not in got] + [f"{tag}: extra" for tag in got if tag not in want]
    for tag in set(got) & set(want):
        a, b = got[tag], want[tag]
        if [s for s, _ in a] != [s for s, _ in b] or any(
            abs(x - y) > tolerance for (_, x), (_, y) in zip(a, b, strict=True)
        ):
            out.append(f"{tag}: {a[:6]} vs {b[:6]}")
    return out


def record(**row: Any) -> None:
    """Add one row to the fault table when ``fault_table.py`` asked for it (no effect otherwise)."""
    target = os.environ.get(TABLE_ENV)
    if target:
        row = {"test": os.environ.get("PYTEST_CURRENT_TEST", "?"), **row}
        with open(target, "a") as stream:
            stream.write(json.dumps(row) + "\n")
