"""MART (Wang et al., ICLR 2020): misclassification-aware adversarial training."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat
from torch import Tensor

from robustlit.attacks.pgd import LossFn
from robustlit.losses.instance_weights import LossTerms
from robustlit.losses.mart import mart_terms
from robustlit.methods.adversarial import AdversarialTraining


class MART(AdversarialTraining):
    """min_θ E[ BCE(p(x'), y) + β · KL(p(x) ‖ p(x')) · (1 − p_y(x)) ] (Wang et al., ICLR 2020, the MART objective).

    x' comes from PGD on the cross-entropy, in eval mode, from x + 0.001·N(0, I) (the authors'
    ``mart.py``); the loss is computed in train mode with nothing detached
    (:func:`robustlit.losses.mart.mart_loss`). Terms: natural_i = BCE(p(x'_i), y_i) (the boosted
    cross-entropy of the adversarial example), robust_i = β · KL(p(x_i) ‖ p(x'_i)) · (1 − p_{y_i}(x_i));
    a ``weighting`` multiplies the regulariser, as for TRADES (docs/adversarial_training.md).

    Args:
        beta: weight β of the misclassification-aware KL regulariser (the authors' code: 6.0 for
            WRN-34-10, 5.0 for ResNet-18).
        **kwargs: see :class:`AdversarialTraining` (eps, step_size, steps, weighting, ...).
    """

    default_random_start = "gaussian"

    def __init__(self, beta: NonNegativeFloat = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if beta < 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        self.beta = beta

    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """CE(f(x'), y) per example (MART's inner maximisation)."""
        return lambda logits: F.cross_entropy(logits, y, reduction="none")

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = self.adversarial_examples(x, y, kappa)
        logits_clean = self(x)
        logits_adv = self(x_adv)
        natural, robust = mart_terms(logits_clean, logits_adv, y, self.beta)
        return LossTerms(natural, robust, y, logits_adv, kappa, self.threat_model.steps, logits_clean)
