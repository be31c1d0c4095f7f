"""Checks the CLI runs before any work starts or any folder is made (docs/faults.md, "Config mistakes").

Each returns a refusal, a :class:`~robustlit.utils.errors.FieldError` naming the config key to correct (the CLI
prints it as one line ``error: <field>: <reason>`` and exits with status 2 through its parser), or ``None``:

- :func:`untrained_evaluation`: ``validate``/``test``/``predict`` of a method whose weights come from ``fit``,
  without ``--ckpt_path``, would evaluate randomly initialised weights; refused unless ``--allow_untrained true``.
- :func:`test_after_fit_without_validation`: ``fit --test_after_fit true`` tests ``best.ckpt``, which is chosen
  on validation epochs; a run with none fails only after training, so it is refused before.
- :func:`trainer_values`: Trainer values Lightning accepts when it is built but fails on later
  (``check_val_every_n_epoch 0``).
- :func:`optimizer_settings`: the optimizer and scheduler are built by Lightning only when ``fit`` starts (after
  the run folder exists); a negative learning rate is found by building them once on a dummy parameter.

A value refused by a class's own ``__init__`` while the CLI builds the classes is a bad config value too: the CLI
reports it with the config key jsonargparse's message leads to (:func:`robustlit.cli_errors.build_error`).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from robustlit.utils.errors import FieldError

#: subcommands that evaluate a model
EVALUATING = ("validate", "test", "predict")


def class_of(class_path: str | None) -> type | None:
    """The class a config's ``class_path`` names, or None when it cannot be imported (the parser says why)."""
    if not class_path or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def untrained_evaluation(subcommand: str | None, config: Any) -> FieldError | None:
    """The refusal of an evaluation of untrained weights, or None."""
    if subcommand not in EVALUATING or config.get("ckpt_path") or config.get("allow_untrained"):
        return None
    model = config.get("model")
    class_path = model.get("class_path") if hasattr(model, "get") else None
    method = class_of(class_path)
    if method is None or getattr(method, "ready_without_checkpoint", False):
        return None
    return FieldError(
        "ckpt_path",
        f"not given: `robustlit {subcommand}` of {class_path} would evaluate randomly initialised weights (its "
        "weights come from `fit`). Give the trained checkpoint, e.g. --ckpt_path "
        "runs/<name>/version_0/checkpoints/best.ckpt, or evaluate the untrained model on purpose with "
        "--allow_untrained true.",
    )


def test_after_fit_without_validation(subcommand: str | None, config: Any) -> FieldError | None:
    """The refusal of ``test_after_fit`` when no validation epoch (hence no ``best.ckpt``) would run, or None."""
    if subcommand != "fit" or not config.get("test_after_fit"):
        return None
    trainer = config.get("trainer")
    get = trainer.get if hasattr(trainer, "get") else lambda key, default=None: default
    reason = None
    if get("enable_checkpointing", True) is False:
        reason = "trainer.enable_checkpointing is false, so no checkpoint is kept to test"
    elif get("limit_val_batches") in (0, 0.0):
        reason = "trainer.limit_val_batches is 0, so no validation epoch runs"
    elif get("fast_dev_run"):
        reason = "trainer.fast_dev_run saves no checkpoint"
    else:
        every, epochs = get("check_val_every_n_epoch", 1), get("max_epochs")
        if isinstance(every, int) and isinstance(epochs, int) and epochs >= 0 and every > epochs:
            reason = f"trainer.check_val_every_n_epoch {every} > max_epochs {epochs}, so no validation epoch runs"
    if reason is None:
        return None
    return FieldError(
        "test_after_fit",
        f"tests the best checkpoint, chosen on validation epochs, but {reason}. Set --test_after_fit false (and "
        "run `robustlit test --ckpt_path <checkpoint>` afterwards), or let a validation epoch run.",
    )


def trainer_values(subcommand: str | None, config: Any) -> FieldError | None:
    """Trainer values Lightning accepts when it is built but fails on later (after the run folder exists)."""
    trainer = config.get("trainer")
    every = trainer.get("check_val_every_n_epoch") if hasattr(trainer, "get") else None
    if isinstance(every, int) and every < 1:
        return FieldError("trainer.check_val_every_n_epoch", f"a positive integer (or null); got {every}")
    return None


def optimizer_settings(module: Any) -> FieldError | None:
    """Build the module's optimizer (and scheduler) once on a dummy parameter; the refusal, or None."""
    factory = getattr(module, "optimizer_factory", None)
    if not callable(factory):
        return None
    try:
        optimizer = factory([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as error:
        return FieldError("model.init_args.optimizer", str(error))
    scheduler = getattr(module, "scheduler_factory", None)
    if callable(scheduler):
        try:
            scheduler(optimizer)
        except (ValueError, TypeError) as error:
            return FieldError("model.init_args.lr_scheduler", str(error))
    return None


__all__ = [
    "class_of",
    "optimizer_settings",
    "test_after_fit_without_validation",
    "trainer_values",
    "untrained_evaluation",
]
