"""An exponential moving average of the weights that is what robustlit evaluates and checkpoints.

Model weight averaging θ_EMA ← τ θ_EMA + (1 − τ) θ after every optimizer step is part of the strongest
published adversarial-training recipes (Gowal et al. 2020, "Uncovering the limits of adversarial
training against norm-bounded adversarial examples"; Rebuffi et al. 2021, "Fixing data augmentation to
improve adversarial robustness"). This is Lightning's ``EMAWeightAveraging`` (parameters and buffers,
incl. batch-norm statistics, averaged by ``torch.optim.swa_utils.AveragedModel``) with three changes
that make the averaged weights the evaluated ones in every robustlit run (docs/adversarial_training.md):

- the averaged weights are swapped in at the start of a validation epoch and swapped back at
  ``on_validation_end`` (Lightning swaps back at ``on_validation_epoch_end``, so an evaluation callback
  listed after it, e.g. :class:`~robustlit.callbacks.AdversarialEvaluation`, would attack the raw weights);
- checkpoints hold the averaged weights in ``state_dict`` (Lightning's behaviour) and the raw ones in
  ``current_model_state``, so :func:`robustlit.load_classifier`, ``validate``/``test --ckpt_path`` and
  exports read the EMA weights; only ``fit --ckpt_path`` (resume) restores the raw weights and the average;
- after ``fit`` the module holds the averaged weights and the callback forgets its average, so a
  following ``test`` (``test_after_fit``) or ``validate`` of a checkpoint evaluates that checkpoint's
  EMA weights and not the average left in memory.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """Exponential moving average of the weights, evaluated and checkpointed in place of the raw weights.

    Args:
        decay: τ in θ_EMA ← τ θ_EMA + (1 − τ) θ, applied after every ``update_every_n_steps``-th
            optimizer step (the first update copies θ).
        update_every_n_steps: update period in optimizer steps.
        update_starting_at_step: first optimizer step (0-based) that updates the average.
        use_buffers: average buffers (batch-norm running statistics) too; ``False`` keeps the buffers of
            the swapped-in model, i.e. those of the raw weights at the time of the last swap.
    """

    def __init__(
        self,
        decay: ClosedUnitInterval = 0.999,
        update_every_n_steps: PositiveInt = 1,
        update_starting_at_step: NonNegativeInt | None = None,
        use_buffers: bool = True,
    ) -> None:
        super().__init__(
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
        )
        self.decay = decay

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the averaged weights in place until every evaluation callback has run."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs before Lightning's ModelCheckpoint callbacks (always ordered last), whose saved state_dict
        # then gets the average through on_save_checkpoint
        if self._average_model is not None:
            self._swap_models(pl_module)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resume (``fit``): restore the raw weights and the average. Otherwise the module keeps the
        checkpoint's ``state_dict``, which holds the averaged weights."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = None
