"""The audit and the robustness curve wired into AdversarialEvaluation: JSON, table, loggers, figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
from audit_toys import ScaledLogits
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation
from robustlit.data import DigitsDataModule
from robustlit.methods import Standard

PGD = AttackSpec(name="pgd", norm="Linf", eps=0.2, steps=20)  # cross-entropy: blind on saturated logits
CURVE_EPS = [0.0, 0.05, 0.1, 0.2]


def _test_stage(backbone: nn.Module, root: Path) -> tuple[pl.Trainer, AdversarialEvaluation]:
    callback = AdversarialEvaluation(
        [PGD],
        num_examples=100,
        batch_size=50,
        stages=["test"],
        audit_examples=100,
        audit_square_queries=300,
        curve_eps=CURVE_EPS,
        curve_attacks=[AttackSpec(name="native_pgd", norm="Linf", eps=0.2, steps=10)],
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(str(root), name="audit"),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        inference_mode=False,
    )
    trainer.test(Standard(backbone=backbone), datamodule=DigitsDataModule(batch_size=64), verbose=False)
    return trainer, callback


@pytest.fixture(scope="module")
def normal_run(digits_model, tmp_path_factory) -> tuple[pl.Trainer, AdversarialEvaluation]:
    return _test_stage(digits_model[0], tmp_path_factory.mktemp("normal"))


def _json(trainer: pl.Trainer, name: str) -> dict:
    return json.loads((Path(trainer.log_dir) / name).read_text())


def test_normally_trained_model_is_broken_and_not_flagged(normal_run, capsys) -> None:
    trainer, callback = normal_run
    result = _json(trainer, "adversarial_evaluation_test.json")["attacks"][PGD.metric_name]
    assert result["robust_acc"] <= 0.05, result["robust_acc"]  # the attack breaks the undefended model
    assert result["unreliable"] is False, result["audit"]["indicators"]
    assert result["audit"]["n"] == 100 and result["audit"]["reliable"] is True
    assert "unreliable" not in _json(trainer, "adversarial_evaluation_test.json")["attacks"]["ensemble"]
    callback.print_summary(callback.results["test"], "test")
    table = capsys.readouterr().out
    assert "UNRELIABLE" not in table and "reliable" in table and PGD.metric_name in table


def test_audit_numbers_go_to_the_logger_not_the_results_table(normal_run) -> None:
    trainer, _ = normal_run
    assert not [k for k in trainer.callback_metrics if "/audit/" in k]
    with open(Path(trainer.log_dir) / "metrics.csv") as handle:
        columns = next(csv.reader(handle))
    reliable = f"test/audit/{PGD.metric_name}/reliable"
    assert reliable in columns and f"test/audit/{PGD.metric_name}/transfer_success_flag" in columns


def test_curve_is_monotone_and_written_as_png_and_json(normal_run) -> None:
    trainer, callback = normal_run
    curve = _json(trainer, "robustness_curve_test.json")["native_pgd10_margin_linf"]
    assert (Path(trainer.log_dir) / "robustness_curve_test.png").stat().st_size > 1000
    acc = curve["robust_accuracy"]
    assert curve["eps"] == CURVE_EPS and curve["n"] == 100
    assert all(a >= b for a, b in zip(acc, acc[1:], strict=False)), acc
    assert acc[0] == pytest.approx(curve["clean_accuracy"]) and acc[0] > 0.9
    assert acc[-1] <= 0.1, acc  # the undefended model is broken at eps 0.2
    assert all(w <= own for w, own in zip(acc, curve["attack_accuracy"], strict=True))
    assert callback.results["test"]["curves"]["native_pgd10_margin_linf"] == curve


def test_saturated_logits_are_flagged_unreliable(digits_model, tmp_path, capsys) -> None:
    """Logits x 1e4 (Athalye et al. 2018's vanishing gradients): cross-entropy PGD reports a high robust
    accuracy; the audit marks it UNRELIABLE and finds the examples it missed."""
    trainer, callback = _test_stage(ScaledLogits(digits_model[0]), tmp_path)
    result = _json(trainer, "adversarial_evaluation_test.json")["attacks"][PGD.metric_name]
    assert result["robust_acc"] > 0.5, result["robust_acc"]  # masked: the attack is blind
    assert result["unreliable"] is True
    flagged = {n for n, i in result["audit"]["indicators"].items() if i["flagged"]}
    assert {"unavailable_gradients", "unconstrained_failure"} <= flagged, flagged
    assert result["audit"]["worst_case_accuracy"] < 0.1
    callback.print_summary(callback.results["test"], "test")
    table = capsys.readouterr().out
    assert "UNRELIABLE" in table and "non-saturating loss" in table
