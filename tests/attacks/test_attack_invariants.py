"""Every evaluation attack stays inside its threat model, and PGD breaks an undefended model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlit.attacks import AttackSpec, attack_mode, build_attack, pgd_attack, project
from robustlit.models import Normalize


def tiny_cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        Normalize((0.5,), (0.25,)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )


SPECS = [
    AttackSpec(name="fgsm", eps=0.1),
    AttackSpec(name="pgd", eps=0.1, steps=5),
    AttackSpec(name="pgd", norm="L2", eps=0.5, steps=5),
    AttackSpec(name="apgd", eps=0.1, steps=5),
    AttackSpec(name="apgd", norm="L2", eps=0.5, steps=5),
    AttackSpec(name="apgd_t", eps=0.1, steps=3),
    AttackSpec(name="square", eps=0.1, queries=100),
    AttackSpec(name="fab", eps=0.1, steps=3),
    AttackSpec(name="cw", norm="L2", eps=0.5, steps=5),
    AttackSpec(name="native_pgd", eps=0.1, steps=5),
    AttackSpec(name="native_pgd", norm="L2", eps=0.5, steps=5, restarts=2),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.metric_name)
def test_attack_respects_threat_model_and_model_state(spec: AttackSpec) -> None:
    model = tiny_cnn().eval()
    bn = model[2]
    bn.train()  # a submodule deliberately left in train mode must come back in train mode
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    x_adv = build_attack(spec, model, num_classes=10)(x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if spec.norm == "Linf" else delta.norm(dim=1)
    assert bool((size <= spec.eps + 1e-5).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert bn.training and not model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_inputs_outside_unit_box_are_refused() -> None:
    attack = build_attack(AttackSpec(name="pgd", eps=0.1, steps=2), tiny_cnn(), num_classes=10)
    with pytest.raises(ValueError, match="pixel space"):
        attack(torch.rand(4, 1, 8, 8) * 2 - 0.5, torch.zeros(4, dtype=torch.long))


def test_torchattacks_refused_on_unbounded_domain() -> None:
    with pytest.raises(ValueError, match="native_pgd"):
        build_attack(AttackSpec(name="pgd"), tiny_cnn(), num_classes=10, bounds=None)


def test_attack_mode_restores_everything_after_an_exception() -> None:
    model = tiny_cnn().train()
    model[1].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), attack_mode(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        assert torch.is_grad_enabled()
        raise RuntimeError("boom")
    assert all(m.training for m in model.modules())
    assert not model[1].weight.requires_grad and model[1].bias.requires_grad


def test_attack_under_inference_mode_fails_with_the_fix() -> None:
    attack = build_attack(AttackSpec(name="pgd", eps=0.1, steps=2), tiny_cnn(), num_classes=10)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode=False"):
        attack(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_project_equals_clamp_to_intersection() -> None:
    x = torch.rand(32, 3, 4, 4)
    x_adv = x + torch.randn_like(x)
    eps = 0.1
    expected = torch.minimum(torch.maximum(x_adv, (x - eps).clamp(min=0)), (x + eps).clamp(max=1))
    assert torch.allclose(project(x_adv, x, eps, "Linf", (0.0, 1.0)), expected)


def test_pgd_on_linear_model_reaches_closed_form_worst_case() -> None:
    """Binary linear logits [0, w·x + b]: the Linf worst case is clip(x - eps * s * sign(w)) (s = ±1 by label)."""
    torch.manual_seed(3)
    d = 20
    w, b = torch.randn(d), torch.tensor(0.1)
    linear = nn.Linear(d, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([torch.zeros(d), w]))
        linear.bias.copy_(torch.stack([torch.tensor(0.0), b]))
    x = torch.rand(64, d)
    y = torch.randint(0, 2, (64,))
    eps = 0.05
    loss = lambda logits: nn.functional.cross_entropy(logits, y, reduction="none")  # noqa: E731
    x_adv = pgd_attack(linear, x, loss, eps=eps, step_size=eps, steps=3, random_start_kind="none")
    direction = torch.where(y == 1, -1.0, 1.0).unsqueeze(1) * w.sign()
    expected = (x + eps * direction).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    # robust margin on unbounded features: y_s (w·x+b) - eps ||w||_1
    x_free = pgd_attack(linear, x, loss, eps=eps, step_size=eps, steps=2, random_start_kind="none", bounds=None)
    sign = torch.where(y == 1, 1.0, -1.0)
    margin = sign * (x_free @ w + b)
    assert torch.allclose(margin, sign * (x @ w + b) - eps * w.abs().sum(), atol=1e-5)


def test_pgd_breaks_an_undefended_model_and_more_steps_do_not_help_it() -> None:
    """A robust-accuracy number is only meaningful if the same attack breaks an undefended model."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:400], dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:400])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    clean = (model(x).argmax(1) == y).float().mean().item()
    accs = []
    for steps in (1, 20):
        x_adv = build_attack(AttackSpec(name="pgd", eps=0.2, steps=steps), model, 10)(x, y)
        accs.append((model(x_adv).argmax(1) == y).float().mean().item())
    assert clean > 0.95
    assert accs[1] < 0.05, accs
    assert accs[1] <= accs[0]


@pytest.mark.parametrize("name", ["pgd", "native_pgd"])
def test_robust_accuracy_does_not_rise_with_steps_or_restarts(name: str) -> None:
    """At a small radius (robust accuracy strictly between 0 and clean), more budget never helps the model."""
    from undefended import accuracy, held_out, undefended_small_cnn

    model = undefended_small_cnn()
    x, y = held_out(100)
    table = {}
    for steps in (5, 20):
        for restarts in (1, 3):
            torch.manual_seed(0)
            spec = AttackSpec(name=name, eps=0.05, steps=steps, step_size=0.01, restarts=restarts)
            table[(steps, restarts)] = accuracy(model, build_attack(spec, model, 10)(x, y), y)
    assert table[(20, 3)] < accuracy(model, x, y) - 0.1, table  # the attack breaks some examples
    assert table[(5, 3)] <= table[(5, 1)] and table[(20, 3)] <= table[(20, 1)], table
    assert table[(20, 1)] <= table[(5, 1)] and table[(20, 3)] <= table[(5, 3)], table
