"""Progress for log files: one plain line per training epoch with the time left (when stdout is not a terminal).

Lightning's progress bars redraw one terminal line; written to a file (a cluster job's output, ``robustlit fit
... > log``) a rich bar shows nothing until the very end. :class:`PlainProgressBar` prints instead, at the end
of each training epoch (validation included), one line such as::

    epoch 3/30: train/loss 0.812, train/acc/clean 93.1%, val/acc 95.2% (4 s; about 1 min 51 s left)

where the time left is the mean epoch time so far times the epochs still to run (an epoch whose validation runs
an attack is slower, so the estimate rises and falls with the schedule). An adversarial evaluation that ran in
the epoch adds its per-example worst case. The CLI uses it when stdout is not a terminal (docs/evaluation.md).
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar

from robustlit.callbacks.evaluation import format_seconds

#: metrics shown as percentages
_FRACTIONS = ("acc", "robust_acc")


def _format(name: str, value: Any) -> str:
    number = float(value)
    if any(part in name.split("/") for part in _FRACTIONS) and 0 <= number <= 1:
        return f"{name} {100 * number:.1f}%"
    return f"{name} {number:.4g}"


class PlainProgressBar(ProgressBar):
    """One line per training epoch with its metrics, duration and the time left; nothing per batch."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._durations: list[float] = []
        self._epoch_start: float | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._durations = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def epoch_metrics(self, trainer: pl.Trainer) -> dict[str, Any]:
        """The progress-bar metrics (``prog_bar=True``), ``val/acc``, and the worst case of each adversarial
        evaluation that ran this epoch."""
        metrics = trainer.progress_bar_metrics
        shown = {k: metrics[k] for k in sorted(metrics, key=lambda k: ("loss" not in k, k)) if k != "v_num"}
        if "val/acc" in trainer.callback_metrics:
            shown["val/acc"] = trainer.callback_metrics["val/acc"]
        for callback in trainer.callbacks:
            result = (getattr(callback, "results", None) or {}).get("val") or {}
            worst = (result.get("attacks") or {}).get("ensemble")
            if result.get("epoch") == trainer.current_epoch and worst is not None:
                shown["val/robust_acc"] = worst["robust_acc"]
        return shown

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start is None:
            return
        self._durations.append(time.monotonic() - self._epoch_start)
        self._epoch_start = None
        if not (self._enabled and trainer.is_global_zero):
            return
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        of = f"/{total}" if total is not None and total > 0 else ""
        metrics = ", ".join(_format(k, v) for k, v in self.epoch_metrics(trainer).items() if math.isfinite(float(v)))
        timing = format_seconds(self._durations[-1])
        if of:
            mean = sum(self._durations) / len(self._durations)
            timing += f"; about {format_seconds(mean * max(total - epoch, 0))} left"  # type: ignore[operator]
        print(f"epoch {epoch}{of}: {metrics} ({timing})", flush=True)
