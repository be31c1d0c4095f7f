"""The launch line of docs/multi_gpu.md, on CPU: `robustlit test ... --config configs/eval/ddp.yaml` with 2
gloo processes reports exactly the 1-process numbers (each example counted once, no sampler padding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from interop_helpers import PGD, PGD_METRIC, REPO, TrainedRun

DDP_CONFIG = REPO / "configs" / "eval" / "ddp.yaml"
PRETRAINED_CONFIG = REPO / "configs" / "eval" / "pretrained_digits.yaml"


def _run(trained_run: TrainedRun, devices: int) -> dict:
    name = f"ddp-{devices}"
    callback = {
        "class_path": "robustlit.callbacks.AdversarialEvaluation",
        "init_args": {"attacks": [PGD], "num_examples": 270, "batch_size": 64, "stages": ["test"]},
    }
    fragment = {
        "trainer": {
            "callbacks": [callback],
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(trained_run.root / "runs"), "name": name},
            },
            "enable_progress_bar": False,
        },
        "data": {"init_args": {"eval_batch_size": 50}},
    }
    path = trained_run.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fragment))
    args = ["--config", str(PRETRAINED_CONFIG), "--config", str(DDP_CONFIG), "--config", str(path)]
    args += ["--trainer.accelerator", "cpu", "--trainer.devices", str(devices)]
    args += ["--model.init_args.source.path", str(trained_run.backbone_safetensors)]
    args += ["--model.init_args.normalization", "data"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "robustlit", "test", *args],
        cwd=trained_run.root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if devices > 1:  # really distributed: Lightning's launcher started the processes (gloo on CPU)
        assert f"Starting with {devices} processes" in done.stdout + done.stderr
    (log_dir,) = (trained_run.root / "runs" / name).glob("version_*")
    return json.loads((log_dir / "adversarial_evaluation_test.json").read_text())


def test_ddp_fragment_on_two_cpu_processes_matches_one(trained_run: TrainedRun) -> None:
    single, double = _run(trained_run, 1), _run(trained_run, 2)
    assert single["num_examples"] == double["num_examples"] == 270
    assert single["clean_acc"] == double["clean_acc"] > 0.8
    assert single["attacks"][PGD_METRIC] == double["attacks"][PGD_METRIC]
    assert single["attacks"][PGD_METRIC]["robust_acc"] < 0.5 * single["clean_acc"]
