"""Per-class and worst-class accuracy (DONE's RA-Tail-30, Sow et al. 2024; docs/evaluation.md)."""

from __future__ import annotations

import math

import pytest
import torch

from robustlit.metrics.worst_class import (
    per_class_accuracy,
    worst_class_accuracy,
    worst_fraction_class_accuracy,
    worst_fraction_count,
)


def test_per_class_accuracy_with_absent_class() -> None:
    y = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    correct = torch.tensor([True, True, True, False, False, True, False])
    acc = per_class_accuracy(correct, y, num_classes=4)
    assert acc[:2].tolist() == [0.75, 0.5]
    assert math.isnan(acc[2].item())
    assert acc[3] == 0.0


def test_worst_fraction_on_handcrafted_example() -> None:
    # Ten classes with accuracies 0.1, 0.2, ..., 1.0 in shuffled order: the 3 worst average 0.2.
    acc = torch.tensor([0.6, 0.1, 0.9, 0.3, 1.0, 0.2, 0.8, 0.5, 0.7, 0.4])
    assert worst_fraction_class_accuracy(acc, 0.3) == pytest.approx(0.2)
    assert worst_fraction_class_accuracy(acc, 1.0) == pytest.approx(0.55)
    assert worst_fraction_class_accuracy(acc, 0.05) == pytest.approx(0.1)
    assert worst_class_accuracy(acc) == pytest.approx(0.1)
    # An absent class is ignored: 9 present classes, ceil(0.3 * 9) = 3 worst are 0.2, 0.3, 0.4.
    acc[1] = float("nan")
    assert worst_fraction_class_accuracy(acc, 0.3) == pytest.approx(0.3)
    assert worst_class_accuracy(acc) == pytest.approx(0.2)


def test_worst_fraction_count_uses_ceil_without_float_noise() -> None:
    assert 0.07 * 100 > 7  # the floating-point trap: math.ceil(0.07 * 100) == 8
    assert worst_fraction_count(100, 0.07) == 7
    assert worst_fraction_count(10, 0.3) == 3
    assert worst_fraction_count(100, 0.3) == 30
    assert worst_fraction_count(9, 0.3) == 3
    assert worst_fraction_count(5, 0.3) == 2
    assert worst_fraction_count(2, 0.01) == 1
    with pytest.raises(ValueError):
        worst_fraction_count(10, 0.0)


def test_end_to_end_from_predictions() -> None:
    y = torch.arange(10).repeat_interleave(10)
    correct = torch.zeros(100, dtype=torch.bool)
    for c in range(10):
        correct[c * 10 : c * 10 + c] = True  # class c has accuracy c / 10
    acc = per_class_accuracy(correct, y, 10)
    assert worst_fraction_class_accuracy(acc) == pytest.approx((0.0 + 0.1 + 0.2) / 3)
    assert worst_class_accuracy(acc) == 0.0
    with pytest.raises(ValueError):
        worst_class_accuracy(torch.full((3,), float("nan")))
