"""Calibration evaluation as a Lightning callback: ECE, NLL, Brier, reliability diagram, and under shift.

Guo et al. 2017 (ECE, Section 2; reliability diagrams) and Hendrycks & Dietterich 2019 (corruptions); see
docs/calibration.md. ECE with 15 equal-width bins (torchmetrics, the same as ``val/ece``), NLL and the
multi-class Brier score of the top-label predictions, on the validation/test set and on corrupted copies
of it (Gaussian and shot noise, Gaussian blur, contrast, rotation; severities 1..5, :mod:`robustlit.metrics.shift`).
Numbers come from the pure functions of :mod:`robustlit.metrics.calibration` applied to the gathered
probabilities of exactly the first ``num_examples`` examples, each counted once, also under DDP
(docs/contracts.md, exact DDP counts).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustlit.callbacks.evaluation import EvaluationCallback, Stage
from robustlit.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    reliability_diagram_figure,
)
from robustlit.metrics.shift import SHIFT_NAMES, corrupt

Shift = Literal["gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "rotate"]
SHIFT_SEED_STRIDE = 100_003


def shift_seed(seed: int, batch_id: int, shift_index: int, severity: int) -> int:
    """Seed of one batch's corruption noise: a function of the global batch id, never of the rank."""
    return seed + SHIFT_SEED_STRIDE * batch_id + 7919 * shift_index + 104_729 * severity


def apply_shift(x: Tensor, shift: Shift, severity: int, seed: int) -> Tensor:
    """Corrupt a [0, 1] image batch (:func:`robustlit.metrics.shift.corrupt`); the noises are drawn from a
    generator seeded with ``seed``."""
    return corrupt(x, shift, severity, seed)


def calibration_metrics(probs: Tensor, y: Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, ECE (torchmetrics, ``n_bins`` equal-width bins, L1), NLL and Brier score of probabilities (N, K)."""
    return {
        "acc": (probs.argmax(dim=1) == y).double().mean().item(),
        "ece": expected_calibration_error(probs, y, n_bins).item(),
        "nll": negative_log_likelihood(probs, y).item(),
        "brier": brier_score(probs, y).item(),
    }


class CalibrationEvaluation(EvaluationCallback):
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
        shifts: corruptions to evaluate under (``gaussian_noise``, ``shot_noise``, ``gaussian_blur``, ``contrast``,
            ``rotate``); images only.
        severities: severities 1..5 of each shift.
        every_n_epochs: frequency during ``fit`` (the last epoch always runs).
        stages: run at ``validate`` (incl. validation during fit) and/or ``test``.
        seed: base seed of the corruption noise.
        reliability_diagram: draw reliability diagrams (PNG + JSON in the run folder; TensorBoard images).
        shift_diagrams: also log one diagram per shifted condition.
        print_table: print a rich summary table at the end of fit/validate/test.
        num_workers: processes reading the evaluation batches (0: in the main process).
    """

    report_name = "calibration"
    title = "calibration"

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
        num_workers: NonNegativeInt = 0,
    ) -> None:
        self.shifts = list(shifts or [])
        self.severities = [1, 3, 5] if severities is None else list(severities)
        for shift in self.shifts:
            if shift not in SHIFT_NAMES:
                raise ValueError(
                    f"CalibrationEvaluation.shifts: unknown shift {shift!r}; allowed: {', '.join(SHIFT_NAMES)}"
                )
        if len(set(self.shifts)) != len(self.shifts):
            raise ValueError(f"CalibrationEvaluation.shifts has duplicates: {self.shifts}")
        if self.shifts and (not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities)):
            raise ValueError(
                f"CalibrationEvaluation.severities must be a non-empty list of integers in 1..5; got {severities}"
            )
        if n_bins < 1:
            raise ValueError(f"CalibrationEvaluation.n_bins must be >= 1; got {n_bins}")
        super().__init__(num_examples, batch_size, every_n_epochs, stages, seed, None, print_table, num_workers)
        self.n_bins = n_bins
        self.reliability_diagram, self.shift_diagrams = reliability_diagram, shift_diagrams

    @property
    def conditions(self) -> list[tuple[str, Shift | None, int]]:
        """(name, shift, severity) of every evaluated condition, clean first."""
        shifted = [(f"{s}_s{v}", s, v) for s in self.shifts for v in self.severities]
        return [("clean", None, 0), *shifted]

    # ---- evaluation ------------------------------------------------------------------------------
    def predict(self, model: nn.Module, dataset: Dataset, bounds, device: torch.device) -> dict[str, Tensor]:  # noqa: ANN001
        """Gathered probabilities of every condition and the labels of the first ``num_examples`` examples."""
        was_training = model.training
        model.eval()
        try:
            return self.collect(dataset, lambda x, y, batch_id: self._batch(model, x, batch_id, bounds), device, bounds)
        finally:
            model.train(was_training)

    def _batch(self, model: nn.Module, x: Tensor, batch_id: int, bounds) -> dict[str, Tensor]:  # noqa: ANN001
        if self.shifts and (x.dim() < 4 or bounds != (0.0, 1.0)):
            raise ValueError(
                f"CalibrationEvaluation.shifts {self.shifts} corrupt images in [0, 1] of shape (N, C, H, W), but "
                f"this data has inputs of shape {tuple(x.shape)} and bounds {bounds}; remove `shifts` for it."
            )
        row = {}
        with torch.no_grad():
            for name, shift, severity in self.conditions:
                inputs = x
                if shift is not None:
                    k = self.shifts.index(shift)
                    inputs = apply_shift(x, shift, severity, shift_seed(self.seed, batch_id, k, severity))
                row[name] = model(inputs).float().softmax(dim=1)
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

    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        return self.evaluate(pl_module.classifier, dataset, pl_module.bounds, pl_module.device)

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        return {
            f"{stage}/calibration/{name}/{metric}": value
            for name, metrics in summary["conditions"].items()
            for metric, value in metrics.items()
        }

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        out = {}
        for name, bins in summary["bins"].items():
            figure = reliability_diagram_figure(
                torch.tensor(bins["confidence"]),
                torch.tensor(bins["accuracy"]),
                torch.tensor(bins["count"]),
                title=f"{stage} {name}, epoch {epoch}",
                ece=summary["conditions"][name]["ece"],
            )
            out["reliability_diagram" + ("" if name == "clean" else f"/{name}")] = (figure, bins)
        return out

    def print_summary(self, summary: dict, title: str) -> None:
        print_calibration_table(summary, title=title)

    def state_fields(self) -> dict[str, Any]:
        return {
            "stages": sorted(self.stages),
            "shifts": self.shifts,
            "severities": self.severities,
            "n": self.num_examples,
        }


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
