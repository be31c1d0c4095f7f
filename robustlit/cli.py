"""``robustlit fit|validate|test|predict --config FILE.yaml``: a LightningCLI with robustness defaults."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO

import robustlit.callbacks  # noqa: F401  (registers short class names)
import robustlit.data  # noqa: F401
import robustlit.methods  # noqa: F401
import robustlit.mixed.evaluation  # noqa: F401  (MixtureEvaluation, by its short name too)
import robustlit.mixed.module  # noqa: F401  (the mixed classifier's module, by its short name too)
import robustlit.models  # noqa: F401
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.checkpoint import best_and_last_checkpoints
from robustlit.callbacks.configured_optimizer import ConfiguredOptimizerOnResume
from robustlit.data.base import RobustDataModule
from robustlit.methods.base import RobustClassifier
from robustlit.utils.checkpoint_io import AtomicCheckpointIO
from robustlit.utils.config_files import RobustArgumentParser
from robustlit.utils.integrity import unreadable_checkpoint
from robustlit.utils.quiet import silence_third_party_noise
from robustlit.utils.run_paths import place_outputs_under_root, reuse_run_version
from robustlit.utils.seeding import BatchSeed

ROBUST_MONITOR = "val/robust_acc/ensemble"


class RobustLitCLI(LightningCLI):
    """LightningCLI with robustlit's defaults and links.

    - ``inference_mode=False`` (attacks need gradients at evaluation time; docs/contracts.md), a
      TensorBoard logger under ``runs/``, seed 0, and a rich progress bar.
    - the DataModule's ``num_classes``, ``mean``, ``std`` and ``bounds`` are linked into the model.
    - two checkpoint callbacks (unless the config has a ``ModelCheckpoint``): ``best.ckpt`` maximising
      ``val/robust_acc/ensemble`` on the epochs an :class:`AdversarialEvaluation` at validation runs,
      else ``val/acc``; and ``last.ckpt`` every epoch (:func:`robustlit.callbacks.best_and_last_checkpoints`).
    - resume that reproduces (``docs/faults.md``): a :class:`BatchSeed` callback re-seeds the global
      RNGs from (seed, epoch, batch) before every training batch, and ``fit --ckpt_path`` of a checkpoint in
      ``<save_dir>/<name>/version_N/checkpoints/`` logs into ``version_N`` again.
    - checkpoints written atomically and read with a clear error (:class:`AtomicCheckpointIO`, unless the config
      has its own ``CheckpointIO`` plugin), their weights verified against a stored checksum on load; on resume
      the configured optimizer and scheduler settings replace the stored ones
      (:class:`ConfiguredOptimizerOnResume`; docs/faults.md).
    - ``--trainer.default_root_dir D`` places everything the run writes: relative logger
      ``save_dir`` and callback ``cache_dir``/``output_dir``/``dirpath`` are resolved under ``D``.
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

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the checkpoint's hyperparameters with torch.load; for an unreadable file torch's
        # error advises weights_only=False (unsafe): report the file as corrupt instead (docs/faults.md)
        try:
            super()._parse_ckpt_path()
        except Exception as error:  # noqa: BLE001 - torch raises several types for unreadable files
            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if not ckpt_path:
                raise
            raise unreadable_checkpoint(ckpt_path, error) from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        place_outputs_under_root(config.trainer)
        if self.subcommand == "fit":
            reuse_run_version(config.trainer, config.get("ckpt_path"))

    def instantiate_trainer(self, **kwargs: Any):  # noqa: ANN201 - returns a Trainer
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        if not any(isinstance(c, BatchSeed) for c in callbacks):
            callbacks.append(BatchSeed())
        if not any(isinstance(c, ConfiguredOptimizerOnResume) for c in callbacks):
            callbacks.append(ConfiguredOptimizerOnResume())
        plugins = config.get("plugins")
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [] if plugins is None else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]

        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar())
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            attacked = [c for c in callbacks if isinstance(c, AdversarialEvaluation) and "validate" in c.stages]
            monitor = ROBUST_MONITOR if attacked else "val/acc"
            every_n_epochs = min((c.every_n_epochs for c in attacked), default=1)
            callbacks.extend(best_and_last_checkpoints(monitor, every_n_epochs))
        config["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def after_fit(self) -> None:
        if self.config.get(self.subcommand, {}).get("test_after_fit"):
            # the first checkpoint callback keeps the best model (best_and_last_checkpoints puts it first);
            # naming its file avoids Lightning's "multiple ModelCheckpoint callbacks" warning for "best"
            best = self.trainer.checkpoint_callback
            ckpt_path = getattr(best, "best_model_path", "") or "best"
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)


def main(args: list[str] | None = None, run: bool = True) -> RobustLitCLI:
    """Build (and by default run) the CLI; returns it so that tests and scripts can read the trainer
    and model. The console script calls :func:`console_main`, which turns this into an exit status."""
    silence_third_party_noise()
    return RobustLitCLI(
        RobustClassifier,
        RobustDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_class=RobustArgumentParser,
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


def console_main() -> int:
    """Entry point of the ``robustlit`` console script: exit status 0 on success.

    A wrong config exits 2 (jsonargparse's ``parser.error``); an exception during the run propagates
    and Python exits 1 with its traceback. Returning the CLI object itself to ``sys.exit`` would make
    every success exit 1, which is what an earlier version did.
    """
    main()
    return 0


__all__ = ["RobustLitCLI", "console_main", "main"]
