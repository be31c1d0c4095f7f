"""TRADES (Zhang et al. 2019, Section 4; docs/adversarial_training.md)."""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse.typing import NonNegativeFloat
from torch import Tensor

from robustlit.attacks.eval_mode import attack_mode
from robustlit.losses.trades import trades_kl, trades_loss
from robustlit.methods.adversarial import AdversarialTraining


class TRADES(AdversarialTraining):
    """min_θ E[ CE(f(x), y) + β · max_{x' ∈ B_ε(x)} KL(p(x) ‖ p(x')) ].

    Reference behaviour (TRADES/trades.py): the inner maximisation runs in eval mode from
    x + 0.001·N(0, I) on the KL to the clean prediction; the outer loss is computed in train mode
    with the clean distribution *not* detached. One deliberate difference: the clean batch is
    forwarded once (the reference forwards it twice); gradients are identical, only batch-norm
    running statistics receive one clean update per step instead of two.

    Args:
        beta: weight β = 1/λ of the robustness regulariser (β = 0 is plain cross-entropy).
        **kwargs: see :class:`AdversarialTraining` (eps, step_size, steps, ...).
    """

    default_random_start = "gaussian"

    def __init__(self, beta: NonNegativeFloat = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.beta = beta

    def adversarial_examples(self, x: Tensor) -> Tensor:
        """x' ≈ argmax_{x' ∈ B_ε(x)} KL(p(x) ‖ p(x')), the clean distribution fixed during the search."""
        with attack_mode(self.classifier, train_mode=self.attack_train_mode), torch.no_grad():
            logits_clean = self.classifier(x)
        return self.perturb(x, lambda logits: trades_kl(logits_clean, logits))

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = self.adversarial_examples(x) if self.beta > 0 else x
        logits_clean = self(x)
        logits_adv = self(x_adv) if self.beta > 0 else logits_clean
        return trades_loss(logits_clean, logits_adv, y, self.beta)
