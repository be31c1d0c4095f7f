"""Run AdversarialEvaluation on digits with N CPU processes (gloo DDP) and dump the test summary.

Called by test_ddp_evaluation.py as a subprocess: Lightning's DDP launcher re-executes this script
once per extra process, which is why it is a script and not a test function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN


def main(devices: int, weights: str, out: str) -> None:
    torch.set_num_threads(1)
    data = DigitsDataModule(batch_size=64, eval_batch_size=50)
    module = Standard(backbone=SmallCNN(10, 1, width=8), mean=data.mean, std=data.std)
    module.load_state_dict(torch.load(weights))
    evaluation = AdversarialEvaluation(
        [
            AttackSpec(name="pgd", eps=0.05, steps=5, step_size=0.02),
            AttackSpec(name="native_pgd", eps=0.1, steps=3, step_size=0.05, restarts=2),
        ],
        num_examples=270,
        batch_size=64,
        stages=["test"],
        print_table=False,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        default_root_dir=str(Path(out).parent),  # the evaluation's JSON and figures: next to the result file
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[evaluation],
    )
    metrics = trainer.test(module, data, verbose=False)[0]
    if trainer.is_global_zero:
        with open(out, "w") as handle:
            json.dump({"summary": evaluation.results["test"], "logged": metrics}, handle)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
