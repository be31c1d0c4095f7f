"""Per-example attack objectives for the audit's traced attacks: the shared losses of
:mod:`robustlit.attacks.losses` (cross-entropy, Carlini-Wagner margin, Croce-Hein DLR), called by name.

All are maximised by the attacker; margin and DLR do not stall where a saturated float32
cross-entropy has a zero gradient.
"""

from __future__ import annotations

from torch import Tensor

from robustlit.attacks.losses import LOSSES, LossName

AttackLoss = LossName


def attack_objective(name: AttackLoss, logits: Tensor, y: Tensor) -> Tensor:
    """Per-example loss (N,) to maximise for untargeted misclassification of ``y``."""
    if name not in LOSSES:
        raise ValueError(f"unknown attack loss {name!r}; expected 'ce', 'margin' or 'dlr'")
    return LOSSES[name](logits, y)
