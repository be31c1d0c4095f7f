"""Per-example attack objectives on logits: cross-entropy, Carlini-Wagner margin, DLR.

Each ``loss(logits, y)`` maps logits (N, K) and labels (N,) to a per-example value (N,) that an
attack *maximises*. Pure torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

LossName = Literal["ce", "margin", "dlr"]
LOSS_NAMES: tuple[str, ...] = ("ce", "margin", "dlr")

_DLR_TINY = 1e-12


def cross_entropy_loss(logits: Tensor, y: Tensor) -> Tensor:
    """-log softmax(z)_y. Its gradient underflows to exactly 0 in float32 once the margin passes ~100."""
    return nn.functional.cross_entropy(logits, y, reduction="none")


def _best_other(logits: Tensor, y: Tensor) -> Tensor:
    others = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), -float("inf"))
    return others.amax(dim=1)


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini and Wagner (2017), eq. 6 without the kappa clip: max_{j != y} z_j - z_y (> 0 iff misclassified)."""
    return _best_other(logits, y) - logits.gather(1, y.unsqueeze(1)).squeeze(1)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Croce and Hein (2020), eq. 4: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12).

    Invariant to shifts and rescalings of the logits; needs at least 3 classes (z_pi3 is the third
    largest logit).
    """
    if logits.shape[1] < 3:
        raise ValueError(
            f"the DLR loss (Croce and Hein 2020, eq. 4) needs >= 3 classes; these logits have {logits.shape[1]}. "
            "Use loss: margin for binary problems."
        )
    ordered = logits.sort(dim=1, descending=True).values
    scale = ordered[:, 0] - ordered[:, 2] + _DLR_TINY
    return margin_loss(logits, y) / scale


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "ce": cross_entropy_loss,
    "margin": margin_loss,
    "dlr": dlr_loss,
}


def check_loss(name: str, num_classes: int) -> None:
    """Refuse unknown losses and DLR on fewer than 3 classes, with the fix."""
    if name not in LOSSES:
        raise ValueError(f"unknown attack loss {name!r}; choose one of {sorted(LOSSES)}")
    if name == "dlr" and num_classes < 3:
        raise ValueError(
            f"loss 'dlr' (Croce and Hein 2020, eq. 4) needs >= 3 classes; this model has {num_classes}. "
            "Use loss: margin (Carlini-Wagner), its binary equivalent up to scale."
        )


def attack_loss(name: str, y: Tensor) -> Callable[[Tensor], Tensor]:
    """The objective ``logits -> loss(logits, y)`` to maximise, for :func:`~robustlit.attacks.pgd.pgd_attack`."""
    if name not in LOSSES:
        raise ValueError(f"unknown attack loss {name!r}; choose one of {sorted(LOSSES)}")
    fn = LOSSES[name]
    return lambda logits: fn(logits, y)


def misclassified(y: Tensor) -> Callable[[Tensor], Tensor]:
    """Success criterion of an untargeted attack: ``logits -> argmax(logits) != y`` per example."""
    return lambda logits: logits.argmax(dim=1) != y


__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "LossName",
    "attack_loss",
    "check_loss",
    "cross_entropy_loss",
    "dlr_loss",
    "margin_loss",
    "misclassified",
]
