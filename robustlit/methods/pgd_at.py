"""PGD adversarial training (Madry et al. 2018, Eq. 2.1; docs/adversarial_training.md)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from robustlit.methods.adversarial import AdversarialTraining


class PGDAT(AdversarialTraining):
    """min_θ E max_{x' ∈ B_ε(x)} CE(f_θ(x'), y): train on K-step PGD examples only (no clean term)."""

    default_random_start = "uniform"

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = self.perturb(x, lambda logits: F.cross_entropy(logits, y, reduction="none"))
        return F.cross_entropy(self(x_adv), y, reduction="none")
