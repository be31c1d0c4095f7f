"""PGD adversarial training (Madry et al., ICLR 2018)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustlit.attacks.ball import RandomStart
from robustlit.attacks.pgd import LossFn
from robustlit.losses.instance_weights import LossTerms
from robustlit.methods.adversarial import AdversarialTraining


class PGDATObjective:
    """The PGD-AT objective as a component: natural_i = 0, robust_i = CE(f(x'_i), y_i), x' from PGD on the same
    cross-entropy. Used by :class:`PGDAT` and by the reweighted methods (``base_loss: pgd_at``)."""

    default_random_start: RandomStart = "uniform"

    def attack_loss(self, method: AdversarialTraining, x: Tensor, y: Tensor) -> LossFn:
        """CE(f(x'), y) per example."""
        return lambda logits: F.cross_entropy(logits, y, reduction="none")

    def loss_terms(self, method: AdversarialTraining, x: Tensor, y: Tensor) -> LossTerms:
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = method.adversarial_examples(x, y, kappa)
        logits_adv = method(x_adv)
        robust = F.cross_entropy(logits_adv, y, reduction="none")
        return LossTerms(torch.zeros_like(robust), robust, y, logits_adv, kappa, method.threat_model.steps)


class PGDAT(AdversarialTraining):
    """min_θ E max_{x' ∈ B_ε(x)} CE(f_θ(x'), y) (Madry et al. 2018, eq. 2.1): K-step PGD examples only.

    Terms: natural_i = 0, robust_i = CE(f(x'_i), y_i), x' from PGD on the same cross-entropy
    (:class:`PGDATObjective`). With a ``weighting`` this is GAIRAT / MAIL / DRO on PGD-AT (see
    :class:`AdversarialTraining`).
    """

    default_random_start = PGDATObjective.default_random_start

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = PGDATObjective()

    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """CE(f(x'), y) per example."""
        return self.objective.attack_loss(self, x, y)

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        return self.objective.loss_terms(self, x, y)
