"""The cyclic (triangular, one-cycle) learning rate of fast adversarial training, for any method.

Wong, Rice and Kolter (2020, "Fast is better than free", sec. 5.1) train with a learning rate that rises
linearly from 0 to its peak and falls linearly back to 0 over the run, updated at every step (Smith and
Topin 2019, super-convergence); they note it speeds up PGD adversarial training as well. A callback rather
than a ``lr_scheduler`` because the schedule needs the run's total number of optimizer steps, which only the
Trainer knows, and must be applied every step for any method.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


def triangular_factor(step: int, total_steps: int, peak: float) -> float:
    """The factor of the peak rate at optimizer step ``step`` (0-based) of ``total_steps``: the value at
    t = (step + 1) / total_steps of the triangle 0 -> 1 (at ``peak``) -> 0, as the authors' per-iteration
    update ``np.interp(epoch + (i + 1) / len(loader), [0, peak * epochs, epochs], [0, lr_max, 0])``."""
    t = min((step + 1) / total_steps, 1.0)
    return t / peak if t <= peak else max(0.0, (1.0 - t) / (1.0 - peak))


class CyclicLearningRate(Callback):
    """Set every parameter group's learning rate to ``base_lr * triangular_factor(step)`` before each step.

    ``base_lr`` is the group's configured learning rate (the optimizer's ``lr``), recorded at the start of
    training as the group's ``initial_lr`` (where torch's schedulers keep theirs), so it travels with the
    optimizer state in the checkpoint: a resumed run continues the same schedule, and a resume with a new
    configured rate (``--ckpt_path ... --model.init_args.optimizer.init_args.lr X``) follows the new one
    (``ConfiguredOptimizerOnResume`` replaces ``initial_lr``; docs/faults.md). Do not combine with an
    ``lr_scheduler``.

    Args:
        peak: where the rate peaks, as a fraction of training (the authors' MNIST code: 2/5; CIFAR-10: 1/2).
    """

    def __init__(self, peak: float = 0.4) -> None:
        if not 0 < peak < 1:
            raise ValueError(f"peak must lie in (0, 1); got {peak}")
        self.peak = float(peak)
        self.base_lrs: list[list[float]] | None = None
        self.total_steps: int | None = None
        self._optimizers: list[Any] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "CyclicLearningRate sets the learning rate itself; remove the lr_scheduler from the config"
            )
        for o, optimizer in enumerate(trainer.optimizers):
            for g, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:  # a fresh run, or a checkpoint from before initial_lr was recorded
                    stored = self.base_lrs[o][g] if self.base_lrs is not None else group["lr"]
                    group["initial_lr"] = float(stored)
        self._optimizers = list(trainer.optimizers)
        self.total_steps = max(int(trainer.estimated_stepping_batches), 1)
        self._apply(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._apply(trainer)

    def _apply(self, trainer: pl.Trainer) -> None:
        factor = triangular_factor(trainer.global_step, self.total_steps or 1, self.peak)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def state_dict(self) -> dict[str, Any]:
        # the bases live in the optimizer groups (initial_lr); kept here too for checkpoints read by older code
        optimizers = self._optimizers or []
        bases = [[float(g["initial_lr"]) for g in opt.param_groups] for opt in optimizers] or self.base_lrs
        return {"peak": self.peak, "base_lrs": bases}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = state_dict.get("base_lrs")
