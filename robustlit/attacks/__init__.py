"""Attacks: threat models, the eval-mode context, native PGD, adapters over torchattacks/pyautoattack."""

from robustlit.attacks.eval_mode import attack_mode, check_gradients_available
from robustlit.attacks.pgd import pgd_attack, project
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.attacks.threat_model import Norm

__all__ = [
    "AttackSpec",
    "Norm",
    "attack_mode",
    "build_attack",
    "check_gradients_available",
    "pgd_attack",
    "project",
]
