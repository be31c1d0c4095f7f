"""Which point a projected-gradient attack returns: the keep rules of :func:`robustlit.attacks.pgd.pgd_attack`.

The engine runs restarts of K projected steps and shows a keep rule the iterates it asks for
(:class:`Iterate`: the point x^t, its logits and loss); the rule decides, per example, what comes back.

- :class:`LastIterate`: the last point (one restart; the training-time inner maximisation).
- :class:`HighestFinalLoss`: the last point of the restart with the highest final loss (classic PGD with
  restarts, Madry et al. 2018). An evaluation must not use it: a restart that ended on a correctly
  classified point can overwrite one that succeeded, so robust accuracy can *rise* with restarts.
- :class:`KeepEverySuccess`: the evaluation rule (docs/evaluation.md, "Every attack keeps every success").
  Every iterate of every restart, the random start and the last point included, is checked, and an example
  comes back correctly classified only if every one of them failed; so robust accuracy cannot rise with
  more steps or restarts (for a fixed seed the shorter run's iterates are a prefix of the longer one's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

#: logits (N, K) -> bool (N,): did the attack succeed on this example (e.g. misclassified)?
SuccessFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Iterate:
    """One iterate x^t of restart ``restart``, as the engine saw it.

    ``logits`` and ``loss`` (N,) are those of the probe that gave the step's gradient (averaged over EOT
    passes); ``grad`` is the gradient the step from x^t follows, ``None`` at the last iterate (``last``).
    """

    restart: int
    step: int
    last: bool
    point: Tensor
    logits: Tensor
    loss: Tensor
    grad: Tensor | None


class KeepRule:
    """What :func:`~robustlit.attacks.pgd.pgd_attack` returns; one instance per call (it holds state)."""

    #: the iterates :meth:`observe` needs: ``every`` one, each restart's ``last``, or ``none``
    observes: Literal["every", "last", "none"] = "none"

    def start(self, x: Tensor) -> None:
        """Called once with the clean input before the first restart."""

    def observe(self, iterate: Iterate) -> None:
        """Called with the iterates :attr:`observes` names."""

    def end_restart(self, point: Tensor) -> None:
        """Called with each restart's last point."""

    def done(self) -> bool:
        """True when further restarts cannot change :meth:`result`."""
        return False

    def result(self) -> Tensor:
        raise NotImplementedError


class LastIterate(KeepRule):
    """The last point of the last restart."""

    def end_restart(self, point: Tensor) -> None:
        self._last = point

    def result(self) -> Tensor:
        return self._last


class HighestFinalLoss(KeepRule):
    """Per example, the last point of the restart with the highest final loss (the clean input if every final
    loss is NaN); :attr:`restart` (N,) says which restart that was (-1: none)."""

    observes = "last"

    def start(self, x: Tensor) -> None:
        self.best = x.clone()
        self.best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
        self.restart = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)

    def observe(self, iterate: Iterate) -> None:
        if not iterate.last:
            return
        improved = iterate.loss > self.best_loss  # NaN never wins
        self.best[improved] = iterate.point[improved]
        self.best_loss = torch.where(improved, iterate.loss, self.best_loss)
        self.restart = torch.where(improved, iterate.restart, self.restart)

    def result(self) -> Tensor:
        return self.best


class KeepEverySuccess(KeepRule):
    """Per example a successful iterate from any restart if one exists, else the iterate with the highest loss.

    Among successful iterates the first is kept; with ``highest_loss_success`` the one with the highest loss
    (the mixed classifier's adaptive attack: the strongest adversarial point, not merely the first). Stops the
    restarts early once every example has a success, unless ``highest_loss_success``. :attr:`found` (N,)
    says where a success was seen.
    """

    observes = "every"

    def __init__(self, success: Tensor | SuccessFn, highest_loss_success: bool = False) -> None:
        if isinstance(success, Tensor):
            labels = success
            self.success: SuccessFn = lambda logits: logits.argmax(dim=1) != labels
        else:
            self.success = success
        self.highest_loss_success = highest_loss_success

    def start(self, x: Tensor) -> None:
        self.out = x.clone()
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
        self._shape = (-1, *([1] * (x.dim() - 1)))

    def observe(self, iterate: Iterate) -> None:
        succeeded = self.success(iterate.logits)
        hit = succeeded & ~self.found
        # a success beats any failure; a later point replaces one of its own kind only by a higher loss
        rival = (succeeded == self.found) & (~self.found | self.highest_loss_success)
        keep = hit | (rival & (iterate.loss > self.best_loss))
        self.out = torch.where(keep.view(self._shape), iterate.point, self.out)
        self.best_loss = torch.where(keep, iterate.loss, self.best_loss)
        self.found = self.found | succeeded

    def done(self) -> bool:
        return not self.highest_loss_success and bool(self.found.all())

    def result(self) -> Tensor:
        return self.out
