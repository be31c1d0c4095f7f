"""An example is robust only if every iterate of every restart fails: robust accuracy cannot rise with budget.

The keep rules of robustlit/attacks/keep.py are tested here, once, for every attack that uses them (native PGD,
the audit's trace, the mixed classifier's adaptive PGD and APGD).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from toys import RestartToy, SilentSuccessToy

from robustlit.attacks import AttackSpec, attack_loss, build_attack, pgd_attack
from robustlit.attacks.keep import HighestFinalLoss, Iterate, KeepEverySuccess, KeepRule, LastIterate

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


# --- the keep rules themselves (robustlit/attacks/keep.py): the one place the rule is written, tested here ---


def _feed(rule: KeepRule, path: list[tuple[list[bool], list[float]]], restarts: int = 1) -> Tensor:
    """Show ``rule`` a path of iterates: per iterate (success per example, loss per example); point t is t + 1."""
    n = len(path[0][0])
    rule.start(torch.zeros(n, 1))
    steps = len(path) // restarts
    for index, (succeeded, losses) in enumerate(path):
        restart, step = divmod(index, steps)
        logits = torch.tensor([[0.0, 1.0] if s else [1.0, 0.0] for s in succeeded])  # class 1 = success
        point = torch.full((n, 1), float(index + 1))
        rule.observe(Iterate(restart, step, step == steps - 1, point, logits, torch.tensor(losses), None))
        if step == steps - 1:
            rule.end_restart(point)
    return rule.result().squeeze(1)


def test_keep_every_success_keeps_the_first_success_else_the_highest_loss() -> None:
    y = torch.zeros(3, dtype=torch.long)
    path = [  # example 0: success at iterate 2 and 3; example 1: never; example 2: success at the last iterate
        ([False, False, False], [1.0, 5.0, 0.0]),
        ([True, False, False], [0.5, 2.0, 9.0]),
        ([True, False, False], [7.0, 1.0, 1.0]),
        ([False, False, True], [9.0, 3.0, -1.0]),
    ]
    first = KeepEverySuccess(y)
    assert _feed(first, path).tolist() == [2.0, 1.0, 4.0]  # first success; highest loss (5.0) where none
    strongest = KeepEverySuccess(y, highest_loss_success=True)
    assert _feed(strongest, path).tolist() == [3.0, 1.0, 4.0]  # among successes the higher loss (7.0)
    assert first.found.tolist() == strongest.found.tolist() == [True, False, True]


def test_a_success_is_never_replaced_by_a_failure_and_ends_the_restarts() -> None:
    y = torch.zeros(1, dtype=torch.long)
    rule = KeepEverySuccess(y)
    path = [([True], [-5.0]), ([False], [100.0])]  # restart 0 succeeds with a low loss, restart 1 fails higher
    assert _feed(rule, path, restarts=2).tolist() == [1.0]
    assert rule.done()  # every example has a success: more restarts cannot change the result
    strongest = KeepEverySuccess(y, highest_loss_success=True)
    assert _feed(strongest, path, restarts=2).tolist() == [1.0]
    assert not strongest.done()  # a later restart may still find a success with a higher loss


def test_highest_final_loss_looks_at_last_points_only_and_nan_never_wins() -> None:
    rule = HighestFinalLoss()
    path = [  # two restarts of two iterates; only iterates 2 and 4 are last points
        ([False, False], [99.0, 99.0]),
        ([False, False], [1.0, float("nan")]),
        ([False, False], [99.0, 99.0]),
        ([False, False], [2.0, float("nan")]),
    ]
    assert _feed(rule, path, restarts=2).tolist() == [4.0, 0.0]  # example 1: the clean input (NaN losses)
    assert rule.restart.tolist() == [1, -1]
    last = LastIterate()
    assert _feed(last, path, restarts=2).tolist() == [4.0, 4.0]


def test_pgd_attack_refuses_ambiguous_arguments() -> None:
    x, y = torch.full((2, 1), 0.5), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="not both"):
        pgd_attack(RestartToy(), x, attack_loss("ce", y), 0.1, 0.01, 2, success=y, keep=LastIterate())
    with pytest.raises(ValueError, match="random start must be one of"):  # a bool would silently start uniformly
        pgd_attack(RestartToy(), x, attack_loss("ce", y), 0.1, 0.01, 2, random_start_kind=False)
