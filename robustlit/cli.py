"""``robustlit fit|validate|test|predict --config FILE.yaml``: a LightningCLI with robustness defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info

import robustlit.callbacks  # noqa: F401  (registers short class names)
import robustlit.cli_checks as cli_checks
import robustlit.data  # noqa: F401
import robustlit.methods  # noqa: F401
import robustlit.mixed.evaluation  # noqa: F401  (MixtureEvaluation, by its short name too)
import robustlit.mixed.module  # noqa: F401  (the mixed classifier's module, by its short name too)
import robustlit.models  # noqa: F401
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.checkpoint import best_and_last_checkpoints
from robustlit.callbacks.configured_optimizer import ConfiguredOptimizerOnResume
from robustlit.callbacks.publish_checkpoints import PublishCheckpointsAfterLogs
from robustlit.data.base import RobustDataModule
from robustlit.methods.base import RobustClassifier
from robustlit.utils.checkpoint_io import AtomicCheckpointIO
from robustlit.utils.config_files import RobustArgumentParser
from robustlit.utils.integrity import unreadable_checkpoint
from robustlit.utils.quiet import silence_third_party_noise
from robustlit.utils.resume_settings import describe, model_changes, parameter_mismatches, set_setting
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
      has its own ``CheckpointIO`` plugin), published during ``fit`` only after the metrics of their epoch are logged
      (:class:`PublishCheckpointsAfterLogs`), their weights and training state verified against stored checksums on
      load; on resume
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
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="Let `validate`/`test`/`predict` evaluate a trainable method without --ckpt_path, i.e. its randomly "
            "initialised weights (refused otherwise).",
        )
        for key in ("num_classes", "mean", "std", "bounds"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Lightning replaces the model config by the checkpoint's hyperparameters, dropping overrides silently;
        here a given setting that differs is kept (printed), a new class or architecture is refused (exit 2) and an
        unreadable file is reported as corrupt, never with torch's advice to load it unsafely (docs/faults.md)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._stored_shapes: dict[str, tuple[int, ...]] | None = None
        self._resume_changes: list = []
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        try:
            checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        except Exception as error:  # noqa: BLE001 - torch raises several types for unreadable files
            raise unreadable_checkpoint(ckpt_path, error) from None
        state = checkpoint.get("state_dict") or {}
        self._stored_shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        given = self.config[subcommand].get("model")
        stored_config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        stored = stored_config[subcommand].get("model")
        changes = model_changes(given, stored) if given is not None else []
        if any(key == "class_path" for key, _, _ in changes):
            self.parser.error(
                f"{ckpt_path} was written by {stored.class_path}, but the config names {given.class_path}: the method "
                "cannot change with --ckpt_path. Use the run's own config (its config.yaml), or start a new run."
            )
        for key, value, _ in changes:
            set_setting(stored_config[subcommand]["model"], key, value)
        self.config, self._resume_changes = stored_config, changes
        if changes:
            rank_zero_info(
                f"--ckpt_path {ckpt_path}: applying settings that differ from the checkpoint: {describe(changes)}"
            )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        for check in (
            cli_checks.untrained_evaluation,
            cli_checks.test_after_fit_without_validation,
            cli_checks.trainer_values,
        ):
            refusal = check(self.subcommand, config)
            if refusal:
                self.parser.error(refusal)
        place_outputs_under_root(config.trainer)
        if self.subcommand == "fit":
            reuse_run_version(config.trainer, config.get("ckpt_path"))

    def instantiate_classes(self) -> None:
        # a value refused by a class's __init__ is a bad config value: exit 2 before any folder is made
        try:
            super().instantiate_classes()
        except Exception as error:  # noqa: BLE001 - classified by instantiation_error, re-raised otherwise
            refusal = cli_checks.instantiation_error(error)
            if refusal is None:
                raise
            self.parser.error(refusal)
        refusal = cli_checks.optimizer_settings(self.model)
        if refusal:
            self.parser.error(refusal)
        mismatches = parameter_mismatches(self.model, self._stored_shapes) if self._resume_changes else []
        if mismatches and self._stored_shapes is not None:
            self.parser.error(
                f"{describe(self._resume_changes)}: with these settings the model's parameters no longer match the "
                f"checkpoint ({'; '.join(mismatches[:3])}), so they cannot change with --ckpt_path. Drop them, or "
                "start a new run without --ckpt_path."
            )

    def instantiate_trainer(self, **kwargs: Any):  # noqa: ANN201 - returns a Trainer
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        if not any(isinstance(c, BatchSeed) for c in callbacks):
            callbacks.append(BatchSeed())
        if not any(isinstance(c, ConfiguredOptimizerOnResume) for c in callbacks):
            callbacks.append(ConfiguredOptimizerOnResume())
        if not any(isinstance(c, PublishCheckpointsAfterLogs) for c in callbacks):
            callbacks.append(PublishCheckpointsAfterLogs())
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
