"""An example is robust only if every iterate of every restart fails: robust accuracy cannot rise with budget."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from toys import RestartToy, SilentSuccessToy

from robustlit.attacks import AttackSpec, attack_loss, build_attack, pgd_attack

N = 400


def _robust_accuracy(model: nn.Module, spec: AttackSpec, x: Tensor, y: Tensor, seed: int = 0) -> float:
    torch.manual_seed(seed)
    x_adv = build_attack(spec, model, num_classes=3)(x, y)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        return (clean & (model(x_adv).argmax(1) == y)).float().mean().item()


def _restart_toy_data() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = 0.5 + 0.02 * torch.rand(N, 1, generator=generator)  # clean: correct (right half)
    return x, torch.zeros(N, dtype=torch.long)


def test_restart_toy_separates_the_two_halves_as_designed() -> None:
    model = RestartToy()
    t = torch.tensor([[0.1], [0.49], [0.5], [0.9]])
    logits = model(t)
    ce = nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long), reduction="none")
    assert logits.argmax(1).tolist() == [1, 1, 0, 0]
    assert ce[:2].max() < ce[2:].min()


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_restart_toy_robust_accuracy_never_rises_with_restarts_or_steps(loss: str) -> None:
    model = RestartToy()
    x, y = _restart_toy_data()
    table = {
        (restarts, steps): _robust_accuracy(
            model, AttackSpec("native_pgd", eps=0.25, steps=steps, restarts=restarts, loss=loss), x, y
        )
        for restarts in (1, 2, 4)
        for steps in (5, 10, 20, 50)
    }
    for (restarts, steps), acc in table.items():
        for more_restarts in (r for r in (1, 2, 4) if r > restarts):
            assert table[(more_restarts, steps)] <= acc, table
        for more_steps in (s for s in (5, 10, 20, 50) if s > steps):
            assert table[(restarts, more_steps)] <= acc, table
    assert 0.3 <= table[(1, 5)] <= 0.7, table  # the attack breaks about half the examples...
    assert table[(4, 50)] <= 0.2, table  # ... and restarts break more (about 0.52 ** 4)


def test_restart_toy_best_final_loss_is_what_raised_robust_accuracy() -> None:
    """The training-time mode (highest final loss over restarts) reproduces the reported bug: the contrast."""
    model = RestartToy()
    x, y = _restart_toy_data()
    accs = []
    for restarts in (1, 4):
        torch.manual_seed(0)
        x_adv = pgd_attack(model, x, attack_loss("ce", y), eps=0.25, step_size=0.025, steps=20, restarts=restarts)
        with torch.no_grad():
            accs.append((model(x_adv).argmax(1) == y).float().mean().item())
    assert accs[0] < 0.7 and accs[1] > 0.85, accs


def test_silent_success_counts_as_not_robust() -> None:
    model = SilentSuccessToy()
    x, y = torch.full((1, 1), 0.5), torch.zeros(1, dtype=torch.long)
    assert model(x).argmax(1).item() == 0
    kwargs = {"eps": 0.3, "step_size": 0.05, "steps": 6, "random_start_kind": "none"}
    last = pgd_attack(model, x, attack_loss("ce", y), **kwargs)
    assert last.item() == pytest.approx(0.8)  # walked through the band [0.54, 0.66) and out of it
    assert model(last).argmax(1).item() == 0  # the last iterate is classified correctly: a silent success
    kept = pgd_attack(model, x, attack_loss("ce", y), success=y, **kwargs)
    assert model(kept).argmax(1).item() != 0 and 0.54 <= kept.item() < 0.66
    spec = AttackSpec("native_pgd", eps=0.3, steps=6, step_size=0.05, random_start=False, loss="ce")
    assert _robust_accuracy(model, spec, x, y) == 0.0


def test_success_function_and_labels_agree() -> None:
    model = RestartToy()
    x, y = _restart_toy_data()
    kwargs = {"eps": 0.25, "step_size": 0.025, "steps": 10, "restarts": 2}
    torch.manual_seed(0)
    by_labels = pgd_attack(model, x, attack_loss("ce", y), success=y, **kwargs)
    torch.manual_seed(0)
    by_fn = pgd_attack(model, x, attack_loss("ce", y), success=lambda z: z.argmax(1) != y, **kwargs)
    assert torch.equal(by_labels, by_fn)
