"""The Certification callback: reference TSV, metrics that agree with robustlit.certify.report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from smoothing_helpers import DIGITS_MEAN, DIGITS_STD, digits, trained_linear_smoothing
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import TensorDataset

from robustlit.callbacks.certification import Certification
from robustlit.certify import (
    TSV_HEADER,
    ConstantSigma,
    SmoothedClassifier,
    average_certified_radius,
    certified_accuracy,
    read_rows,
)
from robustlit.methods.standard import Standard
from robustlit.models import LinearClassifier

SMALL = {"n0": 20, "n": 300, "failure_prob": 0.001, "batch_size": 150, "print_table": False}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained_linear_smoothing()


def _without_time(rows: dict) -> dict:
    return {i: (r.label, r.predict, r.radius, r.correct) for i, r in rows.items()}


def test_test_run_writes_reference_tsv_and_logs_report_figures(
    model: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {**SMALL, "print_table": True}
    callback = Certification(num_examples=12, skip=2, output_dir=str(tmp_path / "cert"), **settings)
    trainer = pl.Trainer(
        accelerator="cpu",
        inference_mode=True,  # certification needs no gradients
        logger=TensorBoardLogger(tmp_path, name="tb"),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    [metrics] = trainer.test(model, datamodule=digits())

    [tsv] = (tmp_path / "cert").glob("certify_test_sigma0.25_n0-20_n-300_p-0.001_*.tsv")
    assert tsv.read_text().splitlines()[0] == TSV_HEADER == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    rows = read_rows(tsv)
    assert sorted(rows) == list(range(0, 24, 2))
    labels = digits().test_dataset.tensors[1]
    assert all(r.label == int(labels[i]) and r.correct == int(r.predict == r.label) for i, r in rows.items())
    radius = [r.radius for r in rows.values()]
    correct = [r.correct for r in rows.values()]
    for r, acc in zip(callback.radii, certified_accuracy(radius, correct, callback.radii), strict=True):
        assert metrics[f"test/certified_acc/r_{r:g}"] == pytest.approx(acc)
    assert metrics["test/average_certified_radius"] == pytest.approx(average_certified_radius(radius, correct))
    assert metrics["test/abstain_rate"] == pytest.approx(sum(r.predict == -1 for r in rows.values()) / 12)
    assert 0.5 <= metrics["test/certified_acc/r_0"] < 1.0 and metrics["test/certified_acc/r_0.5"] < 0.5

    # Each row is Cohen's CERTIFY with the noise seeded by the example index.
    x = digits().test_dataset.tensors[0][4]
    expected = SmoothedClassifier(model.classifier, 0.25).certify(
        x, 20, 300, 0.001, 150, torch.Generator().manual_seed(1_000_003 * 4)
    )
    assert (rows[4].predict, rows[4].radius) == (expected.prediction, pytest.approx(expected.radius, abs=1e-6))

    log_dir = Path(trainer.log_dir)
    summary = json.loads((log_dir / "certification_test.json").read_text())
    assert summary["settings"]["n"] == 300 and summary["settings"]["sigma"] == "ConstantSigma(sigma=0.25)"
    events = EventAccumulator(str(log_dir))
    events.Reload()
    assert "test/certified_accuracy_curve" in events.Tags()["images"]
    assert "average certified radius" in capsys.readouterr().out


def test_interrupted_run_resumes_without_recomputing(
    model: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = digits().test_dataset
    args = (model.classifier, model.sigma_fn, data, (0.0, 1.0))
    callback = Certification(num_examples=10, **SMALL)
    uninterrupted = callback.certify_dataset(*args, tmp_path / "full.tsv")

    computed: list[int] = []
    original = Certification._certify_one

    def counting(self: Certification, smoothed: SmoothedClassifier, dataset: object, idx: int):  # noqa: ANN202
        if len(computed) == stop_after:
            raise KeyboardInterrupt
        computed.append(idx)
        return original(self, smoothed, dataset, idx)

    monkeypatch.setattr(Certification, "_certify_one", counting)
    path = tmp_path / "resumed.tsv"
    stop_after = 4
    with pytest.raises(KeyboardInterrupt):
        callback.certify_dataset(*args, path)
    with path.open("a") as f:
        f.write("4\t3\t3\t0.12")  # killed in the middle of a row
    assert sorted(read_rows(path)) == [0, 1, 2, 3]

    computed.clear()
    stop_after = -1
    resumed = callback.certify_dataset(*args, path)
    assert computed == [4, 5, 6, 7, 8, 9]
    assert (resumed["computed"], resumed["resumed"]) == (6, 4)
    assert _without_time(read_rows(path)) == _without_time(read_rows(tmp_path / "full.tsv"))
    for key in ("certified_acc", "average_certified_radius", "abstain_rate", "radius", "correct"):
        assert resumed[key] == uninterrupted[key]

    computed.clear()
    Certification(num_examples=10, resume=False, **SMALL).certify_dataset(*args, path)
    assert len(computed) == 10


def test_a_named_file_is_not_resumed_with_another_model(model: torch.nn.Module, tmp_path: Path) -> None:
    data = digits().test_dataset
    callback = Certification(num_examples=2, **SMALL)
    callback.certify_dataset(model.classifier, model.sigma_fn, data, (0.0, 1.0), tmp_path / "named.tsv")
    other = trained_linear_smoothing(steps=5)
    with pytest.raises(ValueError, match="another model.*resume: false"):
        callback.certify_dataset(other.classifier, other.sigma_fn, data, (0.0, 1.0), tmp_path / "named.tsv")


def test_sigma_comes_from_the_model_or_the_explicit_argument(model: torch.nn.Module) -> None:
    standard = Standard(backbone=LinearClassifier(64, 10), mean=DIGITS_MEAN, std=DIGITS_STD)
    with pytest.raises(ValueError, match="Standard has no sigma function.*sigma: 0.25"):
        Certification().sigma_for(standard)
    assert Certification(sigma=0.5).sigma_for(standard).sigma == 0.5
    assert Certification(sigma=0.5).sigma_for(model) is model.sigma_fn
    assert Certification(sigma=0.5, override_model_sigma=True).sigma_for(model).sigma == 0.5
    assert isinstance(Certification(sigma=ConstantSigma(0.1)).sigma_for(standard), ConstantSigma)


def test_inputs_outside_unit_interval_are_refused(model: torch.nn.Module, tmp_path: Path) -> None:
    x, y = digits().test_dataset.tensors
    normalised = TensorDataset((x[:3] - 0.3) / 0.38, y[:3])
    with pytest.raises(ValueError, match=r"outside input_bounds=\(0.0, 1.0\).*un-normalised"):
        Certification(**SMALL).certify_dataset(
            model.classifier, model.sigma_fn, normalised, (0.0, 1.0), tmp_path / "x.tsv"
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_prob": 0.0}, "failure_prob must lie in"),
        ({"n": 0}, "n must be a positive integer"),
        ({"radii": [-0.5]}, "radii must be"),
        ({"sigma": -1.0}, "sigma must be positive"),
        ({"override_model_sigma": True}, "needs a sigma"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Certification(**kwargs)
