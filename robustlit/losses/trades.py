"""TRADES surrogate loss (Zhang et al. 2019, Section 4; docs/adversarial_training.md)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def trades_kl(logits_clean: Tensor, logits_adv: Tensor) -> Tensor:
    """Per-example KL( p(x) || p(x') ) = Σ_k p_k(x) [log p_k(x) − log p_k(x')]; gradients reach both."""
    return F.kl_div(
        F.log_softmax(logits_adv, dim=1),
        F.log_softmax(logits_clean, dim=1),
        log_target=True,
        reduction="none",
    ).sum(dim=1)


def trades_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """Per-example CE(f(x), y) + β · KL(p(x) || p(x')) (the clean distribution is not detached)."""
    return F.cross_entropy(logits_clean, y, reduction="none") + beta * trades_kl(logits_clean, logits_adv)
