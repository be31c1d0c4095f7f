"""Shared configuration of methods that train on adversarial examples (inner maximisation by PGD)."""

from __future__ import annotations

from typing import Any

from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveInt
from torch import Tensor

from robustlit.attacks.pgd import LossFn, RandomStart, pgd_attack
from robustlit.attacks.threat_model import Norm
from robustlit.methods.base import RobustClassifier


class AdversarialTraining(RobustClassifier):
    """Base of PGD-AT, TRADES and their variants: owns the training-time threat model.

    Args:
        eps: radius of the training threat model, in [0, 1] pixel units.
        step_size: PGD step size ``a``.
        steps: PGD iterations ``K``.
        norm: ``Linf`` or ``L2``.
        random_start: ``uniform`` (Madry), ``gaussian`` (x + 0.001 N(0, I), TRADES) or ``none``.
        attack_train_mode: generate training attacks with batch-norm in train mode (Madry-TF
            semantics; running statistics are still frozen). Default: eval mode (TRADES/MART).
        **kwargs: see :class:`RobustClassifier` (backbone, optimizer, ...).
    """

    default_random_start: RandomStart = "uniform"

    def __init__(
        self,
        eps: ClosedUnitInterval = 8 / 255,
        step_size: NonNegativeFloat = 2 / 255,
        steps: PositiveInt = 10,
        norm: Norm = "Linf",
        random_start: RandomStart | None = None,
        attack_train_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (pixel units); got {eps}")
        self.eps, self.step_size, self.steps, self.norm = eps, step_size, steps, norm
        self.random_start = random_start or self.default_random_start
        self.attack_train_mode = attack_train_mode

    def perturb(self, x: Tensor, loss_fn: LossFn) -> Tensor:
        """Inner maximisation: PGD on ``loss_fn`` inside the training threat model."""
        return pgd_attack(
            self.classifier,
            x,
            loss_fn,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            norm=self.norm,
            random_start_kind=self.random_start,
            bounds=self.bounds,
            train_mode=self.attack_train_mode,
        )
