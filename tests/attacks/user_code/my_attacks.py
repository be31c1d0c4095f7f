"""A user's module that registers an attack (stands for code outside robustlit; put on sys.path by the test)."""

from __future__ import annotations

from torch import Tensor, nn

from robustlit.attacks import AttackSpec, attack_loss, pgd_attack, register_attack
from robustlit.attacks.registry import AttackFn


@register_attack("one_step_margin", budget="none")
def build_one_step_margin(
    spec: AttackSpec, model: nn.Module, num_classes: int, bounds: tuple[float, float] | None, batch_size: int
) -> AttackFn:
    """One signed step of size eps on the Carlini-Wagner margin (an FGSM on the margin loss)."""

    def run(x: Tensor, y: Tensor) -> Tensor:
        return pgd_attack(
            model, x, attack_loss("margin", y), eps=spec.eps, step_size=spec.eps, steps=1,
            norm=spec.norm, random_start_kind="none", bounds=bounds, success=y,
        )  # fmt: skip

    return run
