"""Calibration evaluation as a Lightning callback: ECE, NLL, Brier, reliability diagram, and under shift.

docs/calibration.md: ECE with 15 equal-width bins, NLL and the multi-class Brier score of the top-label
predictions, on the validation/test set and on corrupted copies of it (Gaussian noise and Gaussian blur,
CIFAR-10-C severities 1..5, :mod:`robustlit.metrics.shift`). Numbers come from the pure functions of
:mod:`robustlit.metrics.calibration` applied to the gathered probabilities of exactly the first
``num_examples`` examples, each counted once, also under DDP (docs/contracts.md, each example counted once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from robustlit.data.base import check_in_bounds
from robustlit.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    reliability_diagram_figure,
)
from robustlit.metrics.shift import gaussian_blur, gaussian_noise
from robustlit.utils.distributed import gather_objects, my_batches

Shift = Literal["gaussian_noise", "gaussian_blur"]
Stage = Literal["validate", "test"]
SHIFT_SEED_STRIDE = 100_003


def shift_seed(seed: int, batch_id: int, shift_index: int, severity: int) -> int:
    """Seed of one batch's corruption noise: a function of the global batch id, never of the rank."""
    return seed + SHIFT_SEED_STRIDE * batch_id + 7919 * shift_index + 104_729 * severity


def apply_shift(x: Tensor, shift: Shift, severity: int, seed: int) -> Tensor:
    """Corrupt a [0, 1] image batch; Gaussian noise is drawn from a generator seeded with ``seed``."""
    if shift == "gaussian_noise":
        generator = torch.Generator(device=x.device).manual_seed(seed)
        return gaussian_noise(x, severity, generator=generator)
    if shift == "gaussian_blur":
        return gaussian_blur(x, severity)
    raise ValueError(f"unknown shift {shift!r}; choose gaussian_noise or gaussian_blur")


def calibration_metrics(probs: Tensor, y: Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE (``n_bins`` equal-width bins), NLL and Brier score of probabilities (N, K)."""
    return {
        "acc": (probs.argmax(dim=1) == y).double().mean().item(),
        "ece": expected_calibration_error(probs, y, n_bins).item(),
        "nll": negative_log_likelihood(probs, y).item(),
        "brier": brier_score(probs, y).item(),
    }


def _dataset_of(loaders: object) -> Dataset:
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    return loader.dataset  # type: ignore[union-attr]


class CalibrationEvaluation(Callback):
    """Log calibration metrics of the first ``num_examples`` validation/test examples, clean and shifted.

    Logs ``<stage>/calibration/<condition>/{acc,ece,nll,brier}`` for condition ``clean`` and each
    ``<shift>_s<severity>``, plus ``<stage>/calibration/<shift>_mean/...`` (mean over severities), draws
    the clean reliability diagram into TensorBoard (``<stage>/reliability_diagram``; also one per
    shifted condition with ``shift_diagrams``), writes ``calibration_<stage>.json`` into the log
    directory and prints a rich table at the end (rank 0). Examples are dealt to DDP ranks in whole
    fixed batches without padding; the corruption noise of a batch is seeded by its global index, so
    1 and 2 processes report identical numbers. Skips the sanity check.

    Args:
        num_examples: how many evaluation examples (``None``: all).
        batch_size: evaluation batch size.
        n_bins: ECE / reliability-diagram bins (15 by convention).
        shifts: corruptions to evaluate under (``gaussian_noise``, ``gaussian_blur``); images only.
        severities: severities 1..5 of each shift.
        every_n_epochs: frequency during ``fit`` (the last epoch always runs).
        stages: run at ``validate`` (incl. validation during fit) and/or ``test``.
        seed: base seed of the corruption noise.
        reliability_diagram: log reliability diagrams (needs a TensorBoardLogger; silently skipped otherwise).
        shift_diagrams: also log one diagram per shifted condition.
        print_table: print a rich summary table at the end of fit/validate/test.
    """

    def __init__(
        self,
        num_examples: PositiveInt | None = None,
        batch_size: PositiveInt = 256,
        n_bins: PositiveInt = 15,
        shifts: list[Shift] | None = None,
        severities: list[int] | None = None,
        every_n_epochs: PositiveInt = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        reliability_diagram: bool = True,
        shift_diagrams: bool = False,
        print_table: bool = True,
    ) -> None:
        self.shifts = list(shifts or [])
        self.severities = [1, 3, 5] if severities is None else list(severities)
        for shift in self.shifts:
            if shift not in ("gaussian_noise", "gaussian_blur"):
                raise ValueError(
                    f"CalibrationEvaluation.shifts: unknown shift {shift!r}; allowed: gaussian_noise, gaussian_blur"
                )
        if len(set(self.shifts)) != len(self.shifts):
            raise ValueError(f"CalibrationEvaluation.shifts has duplicates: {self.shifts}")
        if self.shifts and (not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities)):
            raise ValueError(
                f"CalibrationEvaluation.severities must be a non-empty list of integers in 1..5; got {severities}"
            )
        for name, value in (
            ("num_examples", num_examples or 1),
            ("batch_size", batch_size),
            ("n_bins", n_bins),
            ("every_n_epochs", every_n_epochs),
        ):
            if value < 1:
                raise ValueError(f"CalibrationEvaluation.{name} must be >= 1; got {value}")
        self.num_examples, self.batch_size, self.n_bins = num_examples, batch_size, n_bins
        self.every_n_epochs, self.seed = every_n_epochs, seed
        self.stages = set(stages or ["validate", "test"])
        self.reliability_diagram, self.shift_diagrams, self.print_table = (
            reliability_diagram,
            shift_diagrams,
            print_table,
        )
        self.results: dict[str, dict] = {}

    @property
    def conditions(self) -> list[tuple[str, Shift | None, int]]:
        """(name, shift, severity) of every evaluated condition, clean first."""
        shifted = [(f"{s}_s{v}", s, v) for s in self.shifts for v in self.severities]
        return [("clean", None, 0), *shifted]

    # ---- hooks -----------------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" not in self.stages or trainer.sanity_checking:
            return
        if trainer.state.fn == "fit":
            last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
            if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not last_epoch:
                return
        self._run(trainer, pl_module, "val", _dataset_of(trainer.val_dataloaders))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._run(trainer, pl_module, "test", _dataset_of(trainer.test_dataloaders))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print("val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("test")

    # ---- evaluation ------------------------------------------------------------------------------
    def predict(self, model: nn.Module, dataset: Dataset, bounds, device: torch.device) -> dict[str, Tensor]:  # noqa: ANN001
        """Gathered probabilities of every condition and the labels of the first ``num_examples`` examples."""
        n = len(dataset) if self.num_examples is None else min(self.num_examples, len(dataset))
        local = []
        was_training = model.training
        model.eval()
        try:
            for batch_id, indices in my_batches(n, self.batch_size):
                local.append(self._batch(model, dataset, batch_id, indices, bounds, device))
        finally:
            model.train(was_training)
        rows = [row for part in gather_objects(local) for row in part]
        index = torch.cat([r["index"] for r in rows])
        order = index.argsort()
        if not torch.equal(index[order], torch.arange(n)):
            raise RuntimeError("CalibrationEvaluation: gathered examples are not exactly 0..n-1 once each")
        out = {"label": torch.cat([r["label"] for r in rows])[order]}
        for name, _, _ in self.conditions:
            out[name] = torch.cat([r[name] for r in rows])[order]
        return out

    def _batch(self, model, dataset, batch_id, indices, bounds, device) -> dict[str, Tensor]:  # noqa: ANN001
        x, y = default_collate([dataset[i] for i in indices])[:2]
        x, y = x.to(device), y.to(device)
        check_in_bounds(x, bounds, "CalibrationEvaluation")
        if self.shifts and (x.dim() < 4 or bounds != (0.0, 1.0)):
            raise ValueError(
                f"CalibrationEvaluation.shifts {self.shifts} corrupt images in [0, 1] of shape (N, C, H, W), but "
                f"this data has inputs of shape {tuple(x.shape)} and bounds {bounds}; remove `shifts` for it."
            )
        row = {"index": torch.tensor(indices), "label": y.cpu()}
        with torch.no_grad():
            for name, shift, severity in self.conditions:
                inputs = x
                if shift is not None:
                    k = self.shifts.index(shift)
                    inputs = apply_shift(x, shift, severity, shift_seed(self.seed, batch_id, k, severity))
                row[name] = model(inputs).float().softmax(dim=1).cpu()
        return row

    def evaluate(self, model: nn.Module, dataset: Dataset, bounds, device: torch.device) -> dict:  # noqa: ANN001
        """Metrics of every condition (same result on every rank), plus per-shift means."""
        predictions = self.predict(model, dataset, bounds, device)
        label = predictions["label"]
        summary: dict = {"num_examples": int(label.numel()), "n_bins": self.n_bins, "conditions": {}}
        for name, _, _ in self.conditions:
            summary["conditions"][name] = calibration_metrics(predictions[name], label, self.n_bins)
        for shift in self.shifts:
            rows = [summary["conditions"][f"{shift}_s{v}"] for v in self.severities]
            summary["conditions"][f"{shift}_mean"] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        summary["bins"] = {}
        for name in self._diagram_conditions():
            conf, acc, count = reliability_bins(predictions[name], label, self.n_bins)
            summary["bins"][name] = {"confidence": conf.tolist(), "accuracy": acc.tolist(), "count": count.tolist()}
        return summary

    def _diagram_conditions(self) -> list[str]:
        if not self.reliability_diagram:
            return []
        return [name for name, shift, _ in self.conditions if shift is None or self.shift_diagrams]

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, dataset: Dataset) -> None:
        summary = self.evaluate(pl_module.classifier, dataset, pl_module.bounds, pl_module.device)
        summary["epoch"] = trainer.current_epoch
        self.results[stage] = summary
        log = {
            f"{stage}/calibration/{name}/{metric}": value
            for name, metrics in summary["conditions"].items()
            for metric, value in metrics.items()
        }
        pl_module.log_dict(log, on_step=False, on_epoch=True, sync_dist=True)
        self._log_figures(trainer, stage, summary)
        self._write_json(trainer.log_dir, stage, summary)  # log_dir is a collective: read it on every rank

    @rank_zero_only
    def _log_figures(self, trainer: pl.Trainer, stage: str, summary: dict) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        for name, bins in summary["bins"].items():
            tag = f"{stage}/reliability_diagram" + ("" if name == "clean" else f"/{name}")
            figure = reliability_diagram_figure(
                torch.tensor(bins["confidence"]),
                torch.tensor(bins["accuracy"]),
                torch.tensor(bins["count"]),
                title=f"{stage} {name}, epoch {trainer.current_epoch}",
            )
            for logger in loggers:
                logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)

    @rank_zero_only
    def _write_json(self, log_dir: str | None, stage: str, summary: dict) -> None:
        if log_dir is None:
            return
        path = Path(log_dir) / f"calibration_{stage}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))

    @rank_zero_only
    def _print(self, stage: str) -> None:
        if self.print_table and stage in self.results:
            print_calibration_table(self.results[stage], title=f"{stage}: calibration")

    @property
    def state_key(self) -> str:
        """Unique per configuration, so several instances (e.g. one per stage) can be checkpointed."""
        return self._generate_state_key(
            stages=sorted(self.stages), shifts=self.shifts, severities=self.severities, n=self.num_examples
        )

    def state_dict(self) -> dict:
        return {"results": self.results}

    def load_state_dict(self, state_dict: dict) -> None:
        self.results = state_dict.get("results", {})


def print_calibration_table(summary: dict, title: str, console: Console | None = None) -> None:
    """One row per condition: accuracy, ECE, NLL, Brier."""
    table = Table(title=f"{title} ({summary['num_examples']} examples, ECE with {summary['n_bins']} bins)")
    for column in ("condition", "accuracy", "ECE", "NLL", "Brier"):
        table.add_column(column, justify="left" if column == "condition" else "right")
    for name, m in summary["conditions"].items():
        style = "bold" if name.endswith("_mean") else None
        table.add_row(
            name, f"{100 * m['acc']:.2f}%", f"{m['ece']:.4f}", f"{m['nll']:.4f}", f"{m['brier']:.4f}", style=style
        )
    (console or Console()).print(table)
