"""A guard against catastrophic overfitting of single-step adversarial training (docs/fast_adversarial_training.md).

Catastrophic overfitting (Wong, Rice and Kolter 2020, sec. 5.3): within an epoch or two, the accuracy
against multi-step PGD falls to near zero while the accuracy against the training attack (FGSM) rises, the
model having learnt to mask the single-step gradient. The authors' remedy is early stopping on PGD
accuracy measured on a held-out batch. :class:`CatastrophicOverfittingGuard` does that for any method:

- at the end of every ``every_n_epochs``-th training epoch (after its last batch, before validation and
  checkpoints), on a fixed held-out set (the first ``num_examples`` validation examples), it measures clean
  accuracy, the accuracy against the method's own training attack, and the per-example worst case of
  margin-loss PGD (every iterate kept) and a Square attack (score-based, Andriushchenko et al. 2020), which
  gradient masking does not fool;
- when that robust accuracy falls by ``drop`` or more below the best seen so far while the training-attack
  accuracy does not fall (it rises in catastrophic overfitting), it restores the weights of the best epoch
  and stops (``action: restore``), stops (``stop``) or only warns (``warn``), with a message and the curve;
- the curve is logged (``co_guard/{clean,train_attack,robust}_acc``) and written to ``co_guard.json`` in the
  run folder after every check.

No other library ships this check (torchattacks, ART and advertorch train with FGSM-RS but never
verify that the single-step training has not collapsed).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from robustlit.attacks.eps import Eps, check_eps
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.utils.atomic import write_text_atomically

Action = Literal["restore", "stop", "warn"]


class CatastrophicOverfittingGuard(Callback):
    """Detect catastrophic overfitting with an attack that gradient masking does not fool, and act on it.

    Args:
        eps: radius of the check (Linf, pixel units, in [0, 1]; a number or a fraction such as ``8/255``); default:
            the method's training ``eps`` (``threat_model.eps``).
        num_examples: size of the fixed held-out set (the first validation examples).
        pgd_steps: steps of the margin-loss PGD (step 2.5 eps / steps, uniform random start).
        pgd_restarts: its restarts.
        square_queries: queries of the Square attack on the examples PGD did not break (0: no Square).
        drop: the absolute fall of the robust accuracy below its best so far that counts as a collapse.
        gap: the training-attack accuracy exceeding the robust accuracy by this much also counts (a run that
            collapses before its first check has no best to fall from; a healthy single-step run stays within
            a few points of its PGD accuracy).
        gap_patience: how many consecutive checks the ``gap`` must hold before it counts (early in training,
            while the cyclic learning rate ramps up, a healthy run can briefly show a large gap).
        action: ``restore`` (the best epoch's weights, then stop), ``stop`` or ``warn``.
        every_n_epochs: check period in epochs.
        seed: seed of the attacks' randomness (the check of epoch e uses ``seed + e``: reproducible, the
            same on every DDP rank).
    """

    def __init__(
        self,
        eps: Eps | None = None,
        num_examples: PositiveInt = 256,
        pgd_steps: PositiveInt = 20,
        pgd_restarts: PositiveInt = 1,
        square_queries: NonNegativeInt = 300,
        drop: ClosedUnitInterval = 0.2,
        gap: ClosedUnitInterval = 0.7,
        gap_patience: PositiveInt = 2,
        action: Action = "restore",
        every_n_epochs: PositiveInt = 1,
        seed: int = 0,
    ) -> None:
        if eps is not None:
            check_eps(Eps(eps), "Linf", where="CatastrophicOverfittingGuard.eps")
        if action not in ("restore", "stop", "warn"):
            raise ValueError(f"action must be restore, stop or warn; got {action!r}")
        self.eps = Eps(eps) if eps is not None else None
        self.num_examples, self.pgd_steps, self.pgd_restarts = num_examples, pgd_steps, pgd_restarts
        self.square_queries, self.drop, self.gap, self.action = square_queries, drop, gap, action
        self.gap_patience = gap_patience
        self.every_n_epochs, self.seed = every_n_epochs, seed
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.fired: dict[str, Any] | None = None
        self._batch: tuple[Tensor, Tensor] | None = None

    # ---- the held-out set and the attacks ---------------------------------------------------------------
    def _held_out(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor]:
        if self._batch is None:
            datamodule = trainer.datamodule
            if datamodule is None:
                raise RuntimeError("CatastrophicOverfittingGuard needs a DataModule with a validation split")
            loader = datamodule.val_dataloader()
            xs, ys, count = [], [], 0
            for x, y in loader:
                xs.append(x), ys.append(torch.as_tensor(y))
                count += len(y)
                if count >= self.num_examples:
                    break
            if count == 0:
                raise RuntimeError("CatastrophicOverfittingGuard: the validation split is empty")
            self._batch = (torch.cat(xs)[: self.num_examples], torch.cat(ys)[: self.num_examples])
        return self._batch

    def _eps(self, pl_module: pl.LightningModule) -> float:
        if self.eps is not None:
            return self.eps
        threat_model = getattr(pl_module, "threat_model", None)
        if threat_model is None:
            raise ValueError("CatastrophicOverfittingGuard: set eps (this method has no training threat model)")
        return Eps(threat_model.eps)

    def measure(self, pl_module: pl.LightningModule, x: Tensor, y: Tensor) -> dict[str, float]:
        """Clean, training-attack and worst-case (margin PGD, then Square) accuracies on ``(x, y)``."""
        model, eps = pl_module.classifier, self._eps(pl_module)
        num_classes, bounds = pl_module.num_classes, getattr(pl_module, "bounds", (0.0, 1.0))
        with attack_mode(model):  # eval mode throughout: no batch-norm statistic moves during the check
            with torch.no_grad():
                correct = model(x).argmax(1) == y
            train_attack = correct
            if hasattr(pl_module, "adversarial_examples"):
                x_train = pl_module.adversarial_examples(x, y)
                with torch.no_grad():
                    train_attack = model(x_train).argmax(1) == y
            robust = correct.clone()
            specs = [
                AttackSpec(name="native_pgd", eps=eps, steps=self.pgd_steps, restarts=self.pgd_restarts, loss="margin")
            ]
            if self.square_queries:
                specs.append(AttackSpec(name="square", eps=eps, queries=self.square_queries))
            for spec in specs:
                index = robust.nonzero().flatten()
                if len(index) == 0:
                    break
                attack = build_attack(spec, model, num_classes, bounds, batch_size=len(index))
                x_adv = attack(x[index], y[index])
                with torch.no_grad():
                    robust[index] = model(x_adv).argmax(1) == y[index]
        return {
            "clean_acc": correct.float().mean().item(),
            "train_attack_acc": train_attack.float().mean().item(),
            "robust_acc": robust.float().mean().item(),
        }

    # ---- the check, after the last training batch of an epoch ---------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 != trainer.num_training_batches or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        x, y = (t.to(pl_module.device) for t in self._held_out(trainer))
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(self.seed + trainer.current_epoch)
            row = {"epoch": trainer.current_epoch, **self.measure(pl_module, x, y)}
        # under DDP each rank may hold another validation shard: rank 0's check decides for all, so every rank
        # keeps the same history and the same best weights
        row = trainer.strategy.broadcast(row, src=0)
        self.history.append(row)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {f"co_guard/{k}": v for k, v in row.items() if k != "epoch"}, step=trainer.global_step
            )
        collapsed = self._collapsed(row)
        if not collapsed and (self.best is None or row["robust_acc"] >= self.best["robust_acc"]):
            self.best = row
            self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        if collapsed and self.fired is None:
            self._act(trainer, pl_module, row)
        self._write_curve(trainer)

    def _collapsed(self, row: dict[str, float]) -> bool:
        """Robust accuracy ``drop`` below its best while the training-attack accuracy has not fallen, or
        ``gap`` below the training-attack accuracy at the last ``gap_patience`` checks (``row`` is the last)."""
        checks = self.history if self.history and self.history[-1] is row else [*self.history, row]
        recent = checks[-self.gap_patience :]
        if len(recent) == self.gap_patience and all(
            r["train_attack_acc"] - r["robust_acc"] >= self.gap for r in recent
        ):
            return True
        if self.best is None:
            return False
        fell = row["robust_acc"] <= self.best["robust_acc"] - self.drop
        return fell and row["train_attack_acc"] >= self.best["train_attack_acc"] - 0.02

    def _act(self, trainer: pl.Trainer, pl_module: pl.LightningModule, row: dict[str, float]) -> None:
        best = self.best
        restorable = self.action == "restore" and self.best_state is not None and best is not None
        what = {
            "restore": f"restored the weights of epoch {best['epoch']} and stopped"
            if restorable
            else "stopped (no earlier epoch passed the check, so there are no weights to restore)",
            "stop": "stopped training",
            "warn": "training goes on (action: warn)",
        }[self.action]
        attack = f"margin PGD-{self.pgd_steps}" + (f" + Square-{self.square_queries}" if self.square_queries else "")
        curve = "\n".join(
            f"  epoch {r['epoch']:>3}: clean {r['clean_acc']:.1%}  training attack {r['train_attack_acc']:.1%}  "
            f"{attack} {r['robust_acc']:.1%}"
            for r in self.history
        )
        if best is not None and row["robust_acc"] <= best["robust_acc"] - self.drop:
            change = (
                f"fell from {best['robust_acc']:.1%} (epoch {best['epoch']}) to {row['robust_acc']:.1%} while the "
                f"accuracy against the training attack went from {best['train_attack_acc']:.1%} to "
                f"{row['train_attack_acc']:.1%}"
            )
        else:
            change = (
                f"is {row['robust_acc']:.1%} while the accuracy against the training attack is "
                f"{row['train_attack_acc']:.1%}: the training attack no longer finds the adversarial examples"
            )
        message = (
            f"Catastrophic overfitting at epoch {row['epoch']}: the {attack} accuracy on {len(self._batch[1])} "
            f"held-out examples {change} (Wong et al. 2020, sec. 5.3); {what}.\n{curve}\n"
            "Fixes: N-FGSM (variant: n_fgsm), a smaller step size, fewer epochs, or multi-step PGD-AT "
            "(docs/fast_adversarial_training.md)."
        )
        restored = best["epoch"] if restorable else None
        self.fired = {"epoch": row["epoch"], "action": self.action, "restored_epoch": restored, "message": message}
        if restorable:
            pl_module.load_state_dict(self.best_state)
        if self.action in ("restore", "stop"):
            trainer.should_stop = True
        rank_zero_warn(message)

    def _write_curve(self, trainer: pl.Trainer) -> None:
        folder = trainer.log_dir
        if folder is None or not trainer.is_global_zero:
            return
        text = json.dumps({"history": self.history, "best": self.best, "fired": self.fired}, indent=1)
        write_text_atomically(Path(folder) / "co_guard.json", text)

    # ---- resume -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": copy.deepcopy(self.history),
            "best": self.best,
            "best_state": self.best_state,
            "fired": self.fired,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best, self.best_state = state_dict.get("best"), state_dict.get("best_state")
        self.fired = state_dict.get("fired")
