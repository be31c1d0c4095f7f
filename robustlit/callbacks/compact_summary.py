"""The model summary as one line, for log files: ``model: TRADES (SmallCNN), 159 K trainable parameters ...``."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count


class OneLineModelSummary(ModelSummary):
    """Lightning's ``ModelSummary`` printing one line instead of its table (the CLI uses it when stdout is not a
    terminal; the table adds 14 lines to every log)."""

    def __init__(self) -> None:
        super().__init__(max_depth=1)
        self._name = ""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        backbone = getattr(pl_module, "backbone", None)
        inner = f" ({type(backbone).__name__})" if backbone is not None else ""
        self._name = f"{type(pl_module).__name__}{inner}"
        super().on_fit_start(trainer, pl_module)

    def summarize(  # type: ignore[override]
        self,
        summary_data: Any,
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: Any,
        **kwargs: Any,
    ) -> None:
        print(
            f"model: {self._name}, {get_human_readable_count(trainable_parameters)} trainable parameters "
            f"({get_human_readable_count(total_parameters)} in all, {model_size:.2f} MB)",
            flush=True,
        )
