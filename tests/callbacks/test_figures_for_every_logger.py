"""Figures reach every logger: with a CSV logger (no image API) each evaluation writes its figures as PNG,
with the data behind each as JSON, into the run folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger

from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, CalibrationEvaluation, Certification

sys.path.insert(0, str(Path(__file__).parents[1] / "smoothing"))
from smoothing_helpers import digits, trained_linear_smoothing  # noqa: E402


def test_csv_logger_gets_certification_calibration_and_per_class_figures(tmp_path: Path) -> None:
    module = trained_linear_smoothing(steps=30)
    callbacks = [
        Certification(n0=16, n=200, num_examples=12, batch_size=200, print_table=False),
        CalibrationEvaluation(num_examples=40, print_table=False),
        AdversarialEvaluation(
            [AttackSpec("pgd", "Linf", 0.2, 5, 0.05)], num_examples=40, stages=["test"], print_table=False
        ),
    ]
    trainer = pl.Trainer(
        logger=CSVLogger(tmp_path, name="csv"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
    )
    trainer.test(module, datamodule=digits())
    run = Path(trainer.log_dir)
    for stem in ("certified_accuracy_curve_test", "reliability_diagram_test", "per_class_robust_acc_test"):
        assert (run / f"{stem}.png").stat().st_size > 1000, stem
        assert json.loads((run / f"{stem}.json").read_text()), stem
    per_class = json.loads((run / "per_class_robust_acc_test.json").read_text())
    assert len(per_class["robust"]["ensemble"]) == 10 and sum(per_class["count"]) == 40
    # per-class numbers stay out of the logged metrics (and so out of Lightning's results table)
    assert not any("per_class" in key for key in trainer.callback_metrics)
