"""CalibrationEvaluation: the pure metric functions on the same data, shifts, figures, DDP exactness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import TensorDataset

from robustlit.callbacks.calibration import CalibrationEvaluation, apply_shift, shift_seed
from robustlit.data import DigitsDataModule
from robustlit.methods.standard import Standard
from robustlit.metrics.calibration import brier_score, expected_calibration_error, negative_log_likelihood
from robustlit.metrics.shift import gaussian_blur, gaussian_noise
from robustlit.models import SmallCNN

CPU = torch.device("cpu")


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.Tanh(), torch.nn.Linear(10, 10))


def dataset(n: int = 50) -> TensorDataset:
    generator = torch.Generator().manual_seed(4)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def pure(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        probs = net(x).softmax(dim=1)
    return {
        "acc": (probs.argmax(1) == y).double().mean().item(),
        "ece": expected_calibration_error(probs, y, 15).item(),
        "nll": negative_log_likelihood(probs, y).item(),
        "brier": brier_score(probs, y).item(),
    }


def test_numbers_equal_the_pure_metric_functions_clean_and_shifted() -> None:
    net, data = model(), dataset(50)
    callback = CalibrationEvaluation(
        batch_size=64, shifts=["gaussian_noise", "gaussian_blur"], severities=[2, 5], seed=3
    )
    summary = callback.evaluate(net, data, (0.0, 1.0), CPU)
    x, y = data.tensors
    assert summary["num_examples"] == 50
    assert summary["conditions"]["clean"] == pytest.approx(pure(net, x, y), abs=1e-7)
    # one batch (batch_size >= n): batch id 0; noise from a generator seeded as documented
    noisy = gaussian_noise(x, 5, generator=torch.Generator().manual_seed(shift_seed(3, 0, 0, 5)))
    assert summary["conditions"]["gaussian_noise_s5"] == pytest.approx(pure(net, noisy, y), abs=1e-7)
    assert summary["conditions"]["gaussian_blur_s2"] == pytest.approx(pure(net, gaussian_blur(x, 2), y), abs=1e-7)
    mean_ece = (summary["conditions"]["gaussian_blur_s2"]["ece"] + summary["conditions"]["gaussian_blur_s5"]["ece"]) / 2
    assert summary["conditions"]["gaussian_blur_mean"]["ece"] == pytest.approx(mean_ece)
    assert summary["conditions"]["gaussian_noise_s5"] != summary["conditions"]["clean"]


def test_num_examples_and_batching_do_not_change_the_numbers() -> None:
    net, data = model(), dataset(50)
    whole = CalibrationEvaluation(num_examples=40, batch_size=64).evaluate(net, data, (0.0, 1.0), CPU)
    batched = CalibrationEvaluation(num_examples=40, batch_size=7).evaluate(net, data, (0.0, 1.0), CPU)
    x, y = data.tensors
    assert whole["conditions"]["clean"] == pytest.approx(pure(net, x[:40], y[:40]), abs=1e-7)
    assert batched["conditions"]["clean"] == pytest.approx(whole["conditions"]["clean"], abs=1e-7)


def test_validate_logs_metrics_reliability_diagram_and_json(tmp_path: Path) -> None:
    module = Standard(backbone=SmallCNN(10, 1, width=8, hidden=16), mean=(0.3,), std=(0.38,))
    callback = CalibrationEvaluation(num_examples=100, shifts=["gaussian_blur"], severities=[1], print_table=True)
    logger = TensorBoardLogger(tmp_path, name="cal")
    figures: list[str] = []
    add_figure = logger.experiment.add_figure
    logger.experiment.add_figure = lambda tag, fig, **kw: (figures.append(tag), add_figure(tag, fig, **kw))
    trainer = pl.Trainer(
        logger=logger, callbacks=[callback], enable_progress_bar=False, enable_model_summary=False, inference_mode=False
    )
    data = DigitsDataModule()
    trainer.validate(module, data)
    data.setup()
    x, y = data.val_dataset.tensors
    expected = pure(module.classifier.eval(), x[:100], y[:100])
    logged = trainer.callback_metrics
    for metric, value in expected.items():
        assert logged[f"val/calibration/clean/{metric}"].item() == pytest.approx(value, abs=1e-6)
    assert "val/calibration/gaussian_blur_s1/ece" in logged
    assert "val/calibration/gaussian_blur_mean/brier" in logged
    assert figures == ["val/reliability_diagram"]
    written = json.loads((Path(trainer.log_dir) / "calibration_val.json").read_text())
    assert written["conditions"]["clean"]["brier"] == pytest.approx(expected["brier"], abs=1e-7)


def test_shifts_on_non_image_data_fail_with_advice() -> None:
    net = torch.nn.Linear(5, 3)
    data = TensorDataset(torch.rand(10, 5), torch.randint(0, 3, (10,)))
    with pytest.raises(ValueError, match="remove `shifts`"):
        CalibrationEvaluation(shifts=["gaussian_noise"]).evaluate(net, data, None, CPU)
    assert CalibrationEvaluation().evaluate(net, data, None, CPU)["num_examples"] == 10  # clean-only is fine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shifts": ["fog"]}, "fog"), ({"shifts": ["gaussian_noise"], "severities": [0, 6]}, "severities")],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CalibrationEvaluation(**kwargs)


def test_apply_shift_is_reproducible_and_in_bounds() -> None:
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(apply_shift(x, "gaussian_noise", 3, 11), apply_shift(x, "gaussian_noise", 3, 11))
    assert not torch.equal(apply_shift(x, "gaussian_noise", 3, 11), apply_shift(x, "gaussian_noise", 3, 12))
    shifted = apply_shift(x, "gaussian_noise", 5, 0)
    assert shifted.min() >= 0 and shifted.max() <= 1


# ---- DDP: 2 gloo processes report exactly the 1-process numbers ------------------------------------------
def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        callback = CalibrationEvaluation(batch_size=8, shifts=["gaussian_noise"], severities=[4], seed=1)
        summary = callback.evaluate(model(), dataset(45), (0.0, 1.0), CPU)  # 6 batches, the last one short
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(summary))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_report_the_single_process_numbers(tmp_path: Path) -> None:
    single = CalibrationEvaluation(batch_size=8, shifts=["gaussian_noise"], severities=[4], seed=1)
    expected = json.loads(json.dumps(single.evaluate(model(), dataset(45), (0.0, 1.0), CPU)))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # fork: the children inherit the imported modules (spawn would re-import lightning: ~1 min on a loaded CPU)
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected


def test_val_ece_and_the_callbacks_clean_ece_are_one_number(tmp_path: Path) -> None:
    """One ECE (torchmetrics, 15 bins, L1): the method's ``val/ece`` equals the callback's clean ECE."""
    torch.manual_seed(0)
    module = Standard(backbone=SmallCNN(10, 1, width=8, hidden=16), mean=(0.3,), std=(0.38,))
    callback = CalibrationEvaluation(print_table=False)  # all validation examples, like val/ece
    trainer = pl.Trainer(
        logger=CSVLogger(tmp_path, name="ece"),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
    )
    trainer.validate(module, DigitsDataModule())
    logged = trainer.callback_metrics
    assert logged["val/ece"].item() > 0.01  # an untrained network, far from calibrated: the check has teeth
    assert logged["val/calibration/clean/ece"].item() == pytest.approx(logged["val/ece"].item(), abs=1e-6)
    # the figure is written for a logger without an image API (CSV): PNG + its data as JSON
    log_dir = Path(trainer.log_dir)
    assert (log_dir / "reliability_diagram_val.png").stat().st_size > 1000
    bins = json.loads((log_dir / "reliability_diagram_val.json").read_text())
    assert sum(bins["count"]) == callback.results["val"]["num_examples"]
