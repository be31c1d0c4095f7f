"""A 2-process CPU DDP (gloo) run of AdversarialEvaluation reports exactly the 1-process numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN

SCRIPT = Path(__file__).with_name("ddp_evaluation_script.py")


def _train_weights(path: Path) -> None:
    pl.seed_everything(0)
    data = DigitsDataModule(batch_size=64)
    module = Standard(backbone=SmallCNN(10, 1, width=8), mean=data.mean, std=data.std)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, data)
    torch.save(module.state_dict(), path)


def _run(devices: int, weights: Path, tmp: Path) -> dict:
    out = tmp / f"result_{devices}.json"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        [sys.executable, str(SCRIPT), str(devices), str(weights), str(out)],
        check=True,
        env=env,
        timeout=600,
        cwd=tmp,  # the run's own files (JSON, figures) go to the temporary folder, never the working one
    )
    return json.loads(out.read_text())


def test_two_processes_report_exactly_the_single_process_numbers(tmp_path: Path) -> None:
    weights = tmp_path / "weights.pt"
    _train_weights(weights)
    single, double = _run(1, weights, tmp_path), _run(2, weights, tmp_path)
    assert single["summary"]["num_examples"] == double["summary"]["num_examples"] == 270
    assert single["summary"] == double["summary"]
    robust_keys = [k for k in single["logged"] if "robust_acc" in k]
    assert robust_keys and all(single["logged"][k] == double["logged"][k] for k in robust_keys)
    pgd = single["summary"]["attacks"]["pgd5_step0.02_linf_0.05"]["robust_acc"]
    assert 0 < pgd < single["summary"]["clean_acc"]  # the attack does something, and not everything
    # the loop's own clean accuracy uses an unpadded sampler too: 270 examples counted once each
    assert single["logged"]["test/acc"] == double["logged"]["test/acc"]
