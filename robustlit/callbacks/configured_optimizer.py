"""On resume, the configured optimizer and LR-scheduler settings win over the stored ones (docs/faults.md).

Lightning restores the optimizer's and the scheduler's ``state_dict`` from the checkpoint, which includes
their hyperparameters: ``fit --ckpt_path last.ckpt --model.init_args.optimizer.init_args.lr 0.0005`` would
silently train on with the stored learning rate while the run's ``config.yaml`` records the new one.
:class:`ConfiguredOptimizerOnResume` (added by the CLI) applies the configured values after the restore:

- learning rate: the configured base rate replaces the stored one (``initial_lr`` and the scheduler's
  ``base_lrs``); the current rate becomes the scheduler's closed-form value at the restored step (what
  an uninterrupted run with the new settings would use now), or, for schedulers without a closed form,
  the stored current rate scaled by new base / old base;
- every other optimizer setting (weight decay, momentum, betas, eps, ...) is set to the configured value;
- schedule settings (``T_max``, ``eta_min``, ``step_size``, ``gamma``, ``milestones``, ...) likewise, so a
  larger ``--trainer.max_epochs`` with a matching ``T_max`` stretches the cosine schedule.

Moment estimates, step counters and the scheduler's position are kept. Each change is printed (rank 0).
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

#: scheduler attributes that are settings (the rest is progress, restored from the checkpoint)
SCHEDULE_SETTINGS = (
    "T_max",
    "eta_min",
    "step_size",
    "gamma",
    "milestones",
    "total_iters",
    "start_factor",
    "end_factor",
    "factor",
    "power",
    "T_0",
    "T_mult",
    "patience",
    "threshold",
    "min_lrs",
)


def _base_lr(group: dict[str, Any]) -> float:
    return float(group.get("initial_lr", group["lr"]))


class ConfiguredOptimizerOnResume(Callback):
    """Apply the configured optimizer and scheduler settings after Lightning restored a checkpoint's
    (``fit --ckpt_path``); without a checkpoint it does nothing."""

    def __init__(self) -> None:
        self._groups: list[list[dict[str, Any]]] | None = None
        self._schedules: list[dict[str, Any]] = []
        self.changes: list[str] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after configure_optimizers, before the checkpoint's optimizer state is loaded
        self._groups, self._schedules, self.changes = None, [], []
        if not trainer.ckpt_path:
            return
        self._groups = [
            [{k: copy.deepcopy(v) for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            for optimizer in trainer.optimizers
        ]
        self._schedules = [
            {k: copy.deepcopy(getattr(c.scheduler, k)) for k in SCHEDULE_SETTINGS if hasattr(c.scheduler, k)}
            for c in trainer.lr_scheduler_configs
        ]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._groups is None:
            return
        changes: list[str] = []
        for config, scheduler in zip(self._schedules, trainer.lr_scheduler_configs, strict=False):
            for key, value in config.items():
                if getattr(scheduler.scheduler, key) != value:
                    changes.append(f"scheduler {key}: {getattr(scheduler.scheduler, key)} -> {value}")
                    setattr(scheduler.scheduler, key, value)
        for o, (configured, optimizer) in enumerate(zip(self._groups, trainer.optimizers, strict=True)):
            schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
            for g, (fresh, group) in enumerate(zip(configured, optimizer.param_groups, strict=True)):
                for key, value in fresh.items():
                    if key in ("lr", "initial_lr") or group.get(key) == value:
                        continue
                    changes.append(f"optimizer {o} group {g} {key}: {group.get(key)} -> {value}")
                    group[key] = value
                new, old = _base_lr(fresh), _base_lr(group)
                if new != old:
                    changes.append(f"optimizer {o} group {g} base lr: {old:g} -> {new:g}")
                    current = group["lr"]
                    group["lr"] = current * new / old if old else new
                    if "initial_lr" in group:
                        group["initial_lr"] = new
                    for scheduler in schedulers:
                        if hasattr(scheduler, "base_lrs"):
                            scheduler.base_lrs[g] = new
            for scheduler in schedulers:
                closed_form = getattr(scheduler, "_get_closed_form_lr", None)
                if changes and closed_form is not None:
                    for group, lr in zip(optimizer.param_groups, closed_form(), strict=True):
                        group["lr"] = lr
                    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        self.changes = changes
        if changes:
            rank_zero_info(
                f"Resumed from {trainer.ckpt_path} with the configured optimizer settings instead of the stored ones: "
                + "; ".join(changes)
            )


__all__ = ["ConfiguredOptimizerOnResume"]
