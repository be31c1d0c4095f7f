"""Per-class and worst-class accuracy (DONE's "RA-Tail-30", Sow et al. 2024; docs/evaluation.md).

RA-Tail-30 is the (robust) accuracy averaged over the 30 % of classes with the lowest accuracy, i.e.
the 3 worst classes of a 10-class dataset. Pass a boolean "correct under attack" tensor to get robust
versions, a clean-correctness tensor for clean versions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def per_class_accuracy(correct: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Accuracy of each class, shape (num_classes,); NaN for classes with no example."""
    if correct.shape != y.shape:
        raise ValueError(f"correct {tuple(correct.shape)} and y {tuple(y.shape)} must have the same shape")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    counts = torch.bincount(y, minlength=num_classes).double()
    hits = torch.bincount(y, weights=correct.double(), minlength=num_classes)
    acc = hits / counts
    return torch.where(counts > 0, acc, torch.full_like(acc, float("nan"))).float()


def _present(per_class_acc: Tensor) -> Tensor:
    present = per_class_acc[~torch.isnan(per_class_acc)]
    if present.numel() == 0:
        raise ValueError("no class has any example")
    return present


def worst_fraction_count(num_present: int, fraction: float) -> int:
    """Number of worst classes averaged: ceil(fraction · K_present), at least 1.

    ceil rather than round so that "30 % of the classes" never averages fewer than 30 % of them
    (30 % of 10 = 3, of 15 = 5, of 100 = 30, of 5 = 2). The product is rounded to 9 decimals first so
    that floating-point noise cannot add a class (0.07 · 100 = 7.000000000000001 gives 7, not 8).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    return max(1, math.ceil(round(fraction * num_present, 9)))


def worst_fraction_class_accuracy(per_class_acc: Tensor, fraction: float = 0.3) -> Tensor:
    """Mean accuracy of the ceil(fraction · K_present) classes with the lowest accuracy (absent classes,
    NaN in ``per_class_acc``, are ignored)."""
    present = _present(per_class_acc)
    k = worst_fraction_count(present.numel(), fraction)
    return torch.sort(present).values[:k].mean()


def worst_class_accuracy(per_class_acc: Tensor) -> Tensor:
    """Lowest accuracy over the classes that have examples."""
    return _present(per_class_acc).min()
