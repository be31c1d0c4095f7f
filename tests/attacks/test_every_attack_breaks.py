"""Every registered attack breaks an undefended model and stays inside its threat model (issue 23, case 9).

A robust accuracy means something only if the same attack is shown to work: an attack replaced by "return the
clean input" stays inside every eps-ball and passed ``test_attack_invariants.py``; here it reports the clean
accuracy and fails. The table must name every built-in attack of the registry, so that a new attack comes with
its own check.
"""

from __future__ import annotations

import pytest
import torch
from undefended import accuracy, held_out, undefended_small_cnn

from robustlit.attacks import AttackSpec, build_attack
from robustlit.attacks.registry import lookup, registered_attacks

#: (spec, the highest robust accuracy it may leave on 64 held-out digits; clean accuracy about 94 %)
BREAKS: list[tuple[AttackSpec, float]] = [
    (AttackSpec(name="fgsm", eps=0.2), 0.2),
    (AttackSpec(name="pgd", eps=0.2, steps=10), 0.1),
    (AttackSpec(name="pgd", norm="L2", eps=1.0, steps=10), 0.1),
    (AttackSpec(name="native_pgd", eps=0.2, steps=10), 0.1),
    (AttackSpec(name="native_pgd", norm="L2", eps=1.0, steps=10), 0.1),
    (AttackSpec(name="apgd", eps=0.2, steps=10), 0.1),
    (AttackSpec(name="apgd", norm="L2", eps=1.0, steps=10), 0.1),
    (AttackSpec(name="apgd_t", eps=0.2, steps=10), 0.1),
    (AttackSpec(name="apgd_t", norm="L2", eps=1.0, steps=10), 0.1),
    (AttackSpec(name="fab", eps=0.2, steps=10), 0.1),
    (AttackSpec(name="fab", norm="L2", eps=1.0, steps=10), 0.1),
    (AttackSpec(name="square", eps=0.2, queries=300), 0.2),
    (AttackSpec(name="square", norm="L2", eps=1.0, queries=300), 0.3),
    (AttackSpec(name="cw", norm="L2", eps=1.0, steps=100), 0.4),  # minimal-norm: counted inside eps only
    (AttackSpec(name="autoattack", eps=0.2), 0.05),
]


def _builtin_attacks() -> list[str]:
    return [n for n in registered_attacks() if lookup(n).builder.__module__.startswith("robustlit.attacks.")]


def test_the_table_covers_every_built_in_attack_and_norm() -> None:
    covered = {(spec.name, spec.norm) for spec, _ in BREAKS}
    wanted = {(name, norm) for name in _builtin_attacks() for norm in lookup(name).norms}
    wanted.discard(("autoattack", "L2"))  # the same suite as Linf, several seconds more; Linf is run
    assert wanted <= covered, f"attacks without a breaks-an-undefended-model check: {sorted(wanted - covered)}"


@pytest.mark.parametrize("spec, most", BREAKS, ids=[s.metric_name for s, _ in BREAKS])
def test_attack_breaks_an_undefended_model_inside_its_threat_model(spec: AttackSpec, most: float) -> None:
    model = undefended_small_cnn()
    x, y = held_out(64)
    torch.manual_seed(0)
    x_adv = build_attack(spec, model, num_classes=10, batch_size=64)(x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if spec.norm == "Linf" else delta.norm(dim=1)
    assert bool((size <= spec.eps + 1e-5).all()), f"outside the {spec.norm} ball: max {size.max().item():.4f}"
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    clean, robust = accuracy(model, x, y), accuracy(model, x_adv, y)
    assert clean >= 0.9
    assert robust <= most, f"{spec.metric_name} left {robust:.2%} of the undefended model's {clean:.2%}"
