"""``robustlit fit|validate|test|predict --config FILE.yaml``: a LightningCLI with robustness defaults."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar, RichProgressBar
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
from robustlit.callbacks.compact_summary import OneLineModelSummary
from robustlit.callbacks.configured_optimizer import ConfiguredOptimizerOnResume
from robustlit.callbacks.plain_progress import PlainProgressBar
from robustlit.callbacks.publish_checkpoints import PublishCheckpointsAfterLogs
from robustlit.callbacks.run_folder import RunFolder
from robustlit.cli_errors import (
    TRACEBACK_ENV,
    RobustLitParser,
    build_error,
    print_error,
    strip_traceback_flag,
    traceback_requested,
)
from robustlit.data.base import RobustDataModule
from robustlit.methods.base import RobustClassifier
from robustlit.utils.checkpoint_io import AtomicCheckpointIO
from robustlit.utils.errors import FieldError, one_line
from robustlit.utils.integrity import CheckpointError, unreadable_checkpoint
from robustlit.utils.quiet import silence_third_party_noise
from robustlit.utils.resume_settings import describe, model_changes, parameter_mismatches, set_setting
from robustlit.utils.run_paths import place_outputs_under_root, reuse_run_version
from robustlit.utils.seeding import BatchSeed
from robustlit.utils.threat_model_checks import radius_errors

ROBUST_MONITOR = "val/robust_acc/ensemble"


class RobustLitCLI(LightningCLI):
    """LightningCLI with robustlit's defaults and links.

    - ``inference_mode=False`` (attacks need gradients at evaluation time; docs/contracts.md), a
      TensorBoard logger under ``runs/``, seed 0, the learning rate logged every epoch, the run folder printed
      at the start, and a rich progress bar on a terminal -- else one plain line per epoch with the time left
      and a one-line model summary (:class:`PlainProgressBar`, :class:`OneLineModelSummary`: log files).
    - ``validate``/``test`` print robustlit's tables only (``--verbose true`` adds Lightning's metric table).
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
      load; on resume the configured optimizer and scheduler settings replace the stored ones
      (:class:`ConfiguredOptimizerOnResume`; docs/faults.md), and model settings that differ from the checkpoint's
      are applied (printed) or, where they change the parameters or the method, refused.
    - bad input refused before any work or folder, as one line ``error: <field>: <reason>`` with exit status 2
      (:class:`RobustLitParser`, whose later config files replace lists whole): parse-time types, radii against their
      norm, the checks of :mod:`robustlit.cli_checks` (``validate``/``test``/``predict`` of a trainable method
      without ``--ckpt_path`` unless ``--allow_untrained true``), and any class that fails while being built.
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
            self.parser.refuse(
                "model",
                f"{ckpt_path} was written by {stored.class_path}, but the config names {given.class_path}: the method "
                "cannot change with --ckpt_path. Use the run's own config (its config.yaml), or start a new run.",
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
        for key, reason in radius_errors(config):  # a radius's range depends on its norm: checked before building
            self.parser.refuse(key, reason)
        for check in (
            cli_checks.untrained_evaluation,
            cli_checks.test_after_fit_without_validation,
            cli_checks.trainer_values,
        ):
            refusal = check(self.subcommand, config)
            if refusal:
                self.parser.refuse(refusal.field, refusal.reason)
        place_outputs_under_root(config.trainer)
        if self.subcommand == "fit":
            reuse_run_version(config.trainer, config.get("ckpt_path"))

    def instantiate_classes(self) -> None:
        """As LightningCLI's; a model, data module or callback that fails while being built is bad input: one line
        naming its config key (:func:`robustlit.cli_errors.build_error`), exit 2, before any folder is made. Then the
        optimizer is built once on a dummy parameter, and settings changed with ``--ckpt_path`` are checked against
        the checkpoint's parameter shapes."""
        try:
            super().instantiate_classes()
        except CheckpointError:
            raise
        except Exception as error:  # noqa: BLE001 - any constructor's error is the user's input to fix
            if traceback_requested():
                raise
            refused = build_error(error)
            self.parser.refuse(refused.field, refused.reason)
        refusal = cli_checks.optimizer_settings(self.model)
        if refusal:
            self.parser.refuse(refusal.field, refusal.reason)
        mismatches = parameter_mismatches(self.model, self._stored_shapes) if self._resume_changes else []
        if mismatches and self._stored_shapes is not None:
            self.parser.refuse(
                "ckpt_path",
                f"{describe(self._resume_changes)}: with these settings the model's parameters no longer match the "
                f"checkpoint ({'; '.join(mismatches[:3])}), so they cannot change with --ckpt_path. Drop them, or "
                "start a new run without --ckpt_path.",
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

        if not any(isinstance(c, RunFolder) for c in callbacks):
            callbacks.append(RunFolder())
        terminal = sys.stdout.isatty()
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar() if terminal else PlainProgressBar())
        if not terminal and config.get("enable_model_summary", True) is not False:
            if not any(isinstance(c, ModelSummary) for c in callbacks):
                callbacks.append(OneLineModelSummary())
        if config.get("logger") not in (False, None) and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            attacked = [c for c in callbacks if isinstance(c, AdversarialEvaluation) and "validate" in c.stages]
            monitor = ROBUST_MONITOR if attacked else "val/acc"
            every_n_epochs = min((c.every_n_epochs for c in attacked), default=1)
            callbacks.extend(best_and_last_checkpoints(monitor, every_n_epochs))
        config["callbacks"] = callbacks
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:  # a value the Trainer refuses (max_epochs -3)
            keys = {str(key).split(".")[0] for key in config.keys()}  # a Namespace: its top-level keys
            named = [key for key in sorted(keys) if re.search(rf"\b{re.escape(key)}\b", str(error))]
            raise FieldError(f"trainer.{named[0]}" if len(named) == 1 else "trainer", one_line(error)) from error

    def after_fit(self) -> None:
        if self.config.get(self.subcommand, {}).get("test_after_fit"):
            # the first checkpoint callback keeps the best model (best_and_last_checkpoints puts it first);
            # naming its file avoids Lightning's "multiple ModelCheckpoint callbacks" warning for "best"
            best = self.trainer.checkpoint_callback
            ckpt_path = getattr(best, "best_model_path", "") or "best"
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):  # robustlit's tables say it; Lightning's repeats it, names cut short
            parser.set_defaults(verbose=False)
        return parser


def main(args: list[str] | None = None, run: bool = True) -> RobustLitCLI:
    """Build (and by default run) the CLI; returns it so that tests and scripts can read the trainer
    and model. The console script calls :func:`console_main`, which turns this into an exit status."""
    silence_third_party_noise()
    return RobustLitCLI(
        RobustClassifier,
        RobustDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_class=RobustLitParser,
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


def console_main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robustlit`` console script: exit status 0 on success, 2 on bad input, 1 on a failed run.

    ``robustlit evaluate ...`` is :mod:`robustlit.evaluation.command`; everything else is the LightningCLI. A wrong
    config value exits 2 with one line (``RobustLitParser.error``), and so does a model, data module or checkpoint
    that cannot be built or read (:class:`FieldError`, :class:`CheckpointError`); an exception during the run
    propagates and Python exits 1 with its traceback. ``--traceback`` (or ``ROBUSTLIT_TRACEBACK=1``) shows the
    whole message and traceback of bad input too. Returning the CLI object itself to ``sys.exit`` would make every
    success exit 1, which is what an earlier version did.
    """
    args, full = strip_traceback_flag(list(sys.argv[1:] if argv is None else argv))
    if full:
        os.environ[TRACEBACK_ENV] = "1"
    if args[:1] == ["evaluate"]:
        from robustlit.evaluation.command import main as evaluate_main

        return evaluate_main(args[1:])
    if argv is None:
        sys.argv[1:] = args  # LightningCLI reads sys.argv (given both, it warns)
    try:
        main(args if argv is not None else None)
    except SystemExit as exit_:
        if args[:1] in (["-h"], ["--help"]) and exit_.code in (0, None):
            print("\nrobustlit evaluate --help: evaluate a model file on a dataset in one command (docs/evaluation.md)")
        raise
    except (FieldError, CheckpointError) as error:
        if traceback_requested():
            raise
        field = "ckpt_path: " if isinstance(error, CheckpointError) else ""
        return print_error(f"{field}{error}", 2)
    return 0


__all__ = ["RobustLitCLI", "console_main", "main"]
