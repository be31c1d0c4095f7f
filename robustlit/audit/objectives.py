"""Per-example attack objectives on logits: cross-entropy, the CW margin and the DLR loss.

``margin`` is Carlini and Wagner's (2017, objective f6 with kappa = 0) logit margin ``max_{j != y} z_j - z_y``;
``dlr`` is Croce and Hein's (2020) difference-of-logits ratio, invariant to shifting and
rescaling the logits, so neither stalls where a saturated float32 cross-entropy has a zero gradient.
All are maximised by the attacker.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

AttackLoss = Literal["ce", "margin", "dlr"]


def _other_max(logits: Tensor, y: Tensor) -> Tensor:
    others = logits.clone()
    others.scatter_(1, y[:, None], -float("inf"))
    return others.amax(dim=1)


def attack_objective(name: AttackLoss, logits: Tensor, y: Tensor) -> Tensor:
    """Per-example loss (N,) to maximise for untargeted misclassification of ``y``."""
    if name == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    if name == "margin":
        return _other_max(logits, y) - true
    if name == "dlr":
        if logits.shape[1] < 3:
            raise ValueError("the DLR loss needs at least 3 classes; use loss='margin'")
        top = torch.sort(logits, dim=1, descending=True).values
        return (_other_max(logits, y) - true) / (top[:, 0] - top[:, 2] + 1e-12)
    raise ValueError(f"unknown attack loss {name!r}; expected 'ce', 'margin' or 'dlr'")
