"""Square gets AutoAttack's query budget by default, and with it breaks an undefended digits model."""

from __future__ import annotations

import time

import pytest
import torch
from undefended import accuracy, held_out, undefended_small_cnn

from robustlit.attacks import AttackSpec, build_attack


def test_square_budget_is_queries_and_named_so() -> None:
    spec = AttackSpec(name="square", eps=0.2)
    assert spec.queries == 5000 and spec.metric_name == "square5000_linf_0.2"
    with pytest.raises(ValueError, match="queries"):
        AttackSpec(name="square", eps=0.2, steps=100)
    with pytest.raises(ValueError, match="square"):
        AttackSpec(name="pgd", eps=0.2, queries=100)


def test_square_with_its_default_budget_breaks_an_undefended_model() -> None:
    model = undefended_small_cnn()
    x, y = held_out(100)
    clean = accuracy(model, x, y)
    torch.manual_seed(0)
    start = time.perf_counter()
    x_adv = build_attack(AttackSpec(name="square", eps=0.2), model, num_classes=10)(x, y)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = ((model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)).float().mean().item()
    assert clean >= 0.9, clean
    assert robust <= 0.25, (clean, robust, seconds)
