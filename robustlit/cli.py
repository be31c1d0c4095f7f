"""``robustlit fit|validate|test|predict --config FILE.yaml``: a LightningCLI with robustness defaults."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI

import robustlit.callbacks  # noqa: F401  (registers short class names)
import robustlit.data  # noqa: F401
import robustlit.methods  # noqa: F401
import robustlit.models  # noqa: F401
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.checkpoint import RobustCheckpoint
from robustlit.data.base import RobustDataModule
from robustlit.methods.base import RobustClassifier

ROBUST_MONITOR = "val/robust_acc/ensemble"


class RobustLitCLI(LightningCLI):
    """LightningCLI with robustlit's defaults and links.

    - ``inference_mode=False`` (attacks need gradients at evaluation time; docs/contracts.md), a
      TensorBoard logger under ``runs/``, seed 0, and a rich progress bar.
    - the DataModule's ``num_classes``, ``mean``, ``std`` and ``bounds`` are linked into the model.
    - a checkpoint callback monitoring ``val/robust_acc/ensemble`` (max) when an
      :class:`AdversarialEvaluation` runs at validation, else ``val/acc``; ``last.ckpt`` always.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After `fit`, run `test` on the best checkpoint (ignored by other subcommands).",
        )
        for key in ("num_classes", "mean", "std", "bounds"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any):  # noqa: ANN201 - returns a Trainer
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar())
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            attacked = any(isinstance(c, AdversarialEvaluation) and "validate" in c.stages for c in callbacks)
            monitor = ROBUST_MONITOR if attacked else "val/acc"
            callbacks.append(RobustCheckpoint(monitor=monitor, mode="max", save_last=True, filename="best"))
        config["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def after_fit(self) -> None:
        if self.config.get(self.subcommand, {}).get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")


def main(args: list[str] | None = None, run: bool = True) -> RobustLitCLI:
    """Entry point of the ``robustlit`` console script (``args`` lets tests drive it)."""
    return RobustLitCLI(
        RobustClassifier,
        RobustDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "inference_mode": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs", "name": "robustlit"},
            },
        },
        args=args,
        run=run,
    )


__all__ = ["RobustLitCLI", "main"]
