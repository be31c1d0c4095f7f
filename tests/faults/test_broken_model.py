"""No number from a broken model: NaN logits stop an evaluation and a certification naming the batch or
example; broken inputs and labels are reported as such; impossible settings are refused at parse time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fault_runs import record
from harness import CONFIGS, load, shrink, write
from torch import nn
from torch.utils.data import TensorDataset

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation, CalibrationEvaluation
from robustlit.callbacks.certification import Certification
from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.cli import main
from robustlit.utils.finite import NonFiniteOutputError

CPU = torch.device("cpu")
PGD = AttackSpec(name="pgd", norm="Linf", eps=0.1, steps=3)


def _model(nan_weight: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    if nan_weight:
        with torch.no_grad():
            model[1].weight[0, 5] = float("nan")  # random bytes in a weight read as a float can be NaN
    return model


def _data(n: int = 40) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def test_nan_logits_stop_an_adversarial_and_a_calibration_evaluation_naming_the_batch() -> None:
    evaluation = AdversarialEvaluation([PGD], num_examples=None, batch_size=8, print_table=False)
    healthy = evaluation.evaluate(_model(False), _data(), 10, (0.0, 1.0), CPU)
    assert 0.0 <= healthy["clean_acc"] <= 1.0  # the same evaluation of a finite model gives numbers
    with pytest.raises(NonFiniteOutputError, match=r"AdversarialEvaluation: batch 0 \(dataset indices 0\.\.7\)"):
        evaluation.evaluate(_model(True), _data(), 10, (0.0, 1.0), CPU)
    calibration = CalibrationEvaluation(num_examples=None, batch_size=8, shifts=[], print_table=False)
    with pytest.raises(
        NonFiniteOutputError, match=r"CalibrationEvaluation: batch 0 \(dataset indices 0\.\.7\), column"
    ):
        calibration.evaluate(_model(True), _data(), (0.0, 1.0), CPU)
    record(
        fault="a NaN written into one weight of a linear digits model, then AdversarialEvaluation and "
        "CalibrationEvaluation",
        happened="both stopped at batch 0 with NonFiniteOutputError, before any accuracy was computed "
        "(before: NaN logits counted as class 0, `test/acc 0.10`)",
        handled="`EvaluationCallback.collect` watches every forward pass of the evaluated model (a forward hook, one "
        "check per batch) and every float column; the message names the batch and its dataset indices",
    )


def test_nan_logits_stop_a_certification_naming_the_example(tmp_path: Path) -> None:
    settings = {"n0": 8, "n": 32, "batch_size": 32, "num_examples": 4, "sigma": 0.25}
    healthy = Certification(**settings).certify_dataset(
        _model(False), Certification(**settings).sigma_fn, _data(), (0.0, 1.0), tmp_path / "ok.tsv"
    )
    assert healthy["num_examples"] == 4
    callback = Certification(**settings)
    with pytest.raises(NonFiniteOutputError, match=r"Certification: dataset index 0 \(label \d\)") as error:
        callback.certify_dataset(_model(True), callback.sigma_fn, _data(), (0.0, 1.0), tmp_path / "nan.tsv")
    record(
        fault="the same NaN weight, then Certification (Cohen et al.'s CERTIFY, n0=8, n=32)",
        happened="stopped at the first example; no row written (before: class 0 certified at radius 0.675)",
        handled=f"`SmoothedClassifier` refuses NaN votes: `{str(error.value)[:100]}...`",
    )
    assert (tmp_path / "nan.tsv").read_text().strip().splitlines()[1:] == []  # the header, no row
    with pytest.raises(ValueError, match=r"alpha\) must lie in \(0, 1\)"):
        SmoothedClassifier(_model(False), 0.25).predict(torch.rand(1, 8, 8), n=10, alpha=2, batch_size=10)
    with pytest.raises(ValueError, match="n0 must be an integer >= 1"):
        SmoothedClassifier(_model(False), 0.25).certify(torch.rand(1, 8, 8), n0=0, n=10, alpha=0.01, batch_size=10)


def test_a_nan_image_is_reported_as_a_nan_input_not_as_the_attacks_fault() -> None:
    data = _data()
    data.tensors[0][11, 0, 3, 3] = float("nan")
    evaluation = AdversarialEvaluation([PGD], num_examples=None, batch_size=8, print_table=False)
    with pytest.raises(ValueError, match=r"NaN or infinite input values at dataset indices \[11\]") as error:
        evaluation.evaluate(_model(False), data, 10, (0.0, 1.0), CPU)
    record(
        fault="one pixel of test image 11 set to NaN, then AdversarialEvaluation",
        happened="stopped before the attack: the message names the NaN input and its dataset index "
        "(before: 'returned examples outside the threat model', blamed on the attack)",
        handled="`check_evaluation_batch` validates every batch at the evaluation boundary (finite, in bounds, "
        "labels in 0..K-1)",
    )
    assert "threat model" not in str(error.value)


def test_a_label_outside_the_classes_is_named() -> None:
    data = _data()
    data.tensors[1][5] = 12
    evaluation = AdversarialEvaluation([PGD], num_examples=None, batch_size=8, print_table=False)
    evaluation._num_classes = 10  # what run() reads from the module
    with pytest.raises(ValueError, match=r"labels \[12\] outside 0\.\.9 at dataset indices \[5\]"):
        evaluation.evaluate(_model(False), data, 10, (0.0, 1.0), CPU)


def _smoothing_config(tmp: Path, **certification: object) -> Path:
    config = shrink(load(CONFIGS / "digits" / "smoothing.yaml"), tmp)
    config["trainer"]["callbacks"] = [
        {"class_path": "robustlit.callbacks.Certification", "init_args": {"n0": 8, "n": 16, **certification}}
    ]
    return write(config, tmp / "smoothing.yaml")


@pytest.mark.parametrize(
    "override, key",
    [
        (["--model.init_args.sigma", ".inf"], "sigma"),
        (["--model.init_args.sigma", "nan"], "sigma"),
        (["--model.init_args.train_sigma_scale", "inf"], "train_sigma_scale"),
    ],
)
def test_sigma_inf_is_refused_at_parse_time(
    override: list[str], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(_smoothing_config(tmp_path)), *override], run=True)
    error = capsys.readouterr().err
    if override[1] == ".inf":
        record(
            fault="`robustlit fit --config configs/digits/smoothing.yaml --model.init_args.sigma .inf`",
            happened=f"refused while parsing: exit status {info.value.code}, nothing built or written "
            "(before: accepted, every example certified at radius inf)",
            handled="`sigma: SigmaFunction | FinitePositiveFloat` (0 < v < inf, `robustlit/utils/config_types.py`); "
            "ConstantSigma/KNNSigma refuse inf and NaN when built",
        )
    assert info.value.code == 2 and key in error and "Traceback" not in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("failure_prob", ["2", "0", "1"])
def test_failure_probability_outside_the_unit_interval_is_refused_at_parse_time(
    failure_prob: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _smoothing_config(tmp_path, failure_prob=float(failure_prob))
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(config)])
    error = capsys.readouterr().err
    assert info.value.code == 2 and "failure_prob" in error and "Traceback" not in error
    for bad in ({"n": 0}, {"n0": 2.5}):
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(_smoothing_config(tmp_path, **bad))])


def test_nan_logits_stop_the_clean_test_metrics_naming_the_batch() -> None:
    import lightning.pytorch as pl

    from robustlit.data import DigitsDataModule
    from robustlit.methods import Standard

    module = Standard(backbone=_model(True), num_classes=10)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_test_batches=2)
    with pytest.raises(NonFiniteOutputError, match=r"Standard at test batch 0: .* non-finite logits"):
        trainer.test(module, datamodule=DigitsDataModule(batch_size=16))


def test_nan_logits_stop_packed_certification_too() -> None:
    """certify_many packs the noise of several images into one forward pass: it refuses NaN votes as well."""
    from robustlit.certify.smoothing import NonFiniteLogitsError

    smoothed = SmoothedClassifier(_model(nan_weight=True), sigma=0.25)
    x = _data(4).tensors[0]
    with pytest.raises(NonFiniteLogitsError, match="NaN or infinite logits"):
        smoothed.certify_batch(x, n0=8, n=16, alpha=0.001, batch_size=64)
    healthy = SmoothedClassifier(_model(nan_weight=False), sigma=0.25)
    assert len(healthy.certify_batch(x, n0=8, n=16, alpha=0.001, batch_size=64)) == 4
