"""``native_pgd``: robustlit's own PGD as an evaluation attack that keeps every success (docs/evaluation.md)."""

from __future__ import annotations

from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.attacks.losses import attack_loss
from robustlit.attacks.registry import AttackFn, register_attack
from robustlit.attacks.spec import AttackSpec


@register_attack("native_pgd", losses=("ce", "margin", "dlr"), default_loss="margin", unbounded=True, eot=True)
def build_native_pgd(spec: AttackSpec, model: nn.Module, num_classes: int, bounds: Bounds, batch_size: int) -> AttackFn:
    """PGD (Madry et al. 2018) on ``spec.effective_loss`` (margin by default), in evaluation mode.

    Per example, a misclassifying point from any iterate of any restart is returned when one exists,
    so robust accuracy cannot rise with steps or restarts; ``eot_samples`` averages gradients.
    """

    threat = spec.threat_model(bounds)
    loss = spec.effective_loss

    def run(x: Tensor, y: Tensor) -> Tensor:
        return threat.attack(
            model, x, attack_loss(loss, y), success=y, restarts=spec.restarts, eot_samples=spec.eot_samples
        )

    return run
