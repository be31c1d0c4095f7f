"""Attacks: threat models, the eval-mode context, native PGD, losses, the attack registry and its adapters."""

from robustlit.attacks.ball import Bounds, project, random_start
from robustlit.attacks.eval_mode import attack_mode, check_gradients_available
from robustlit.attacks.log_barrier import LogBarrierThreatModel
from robustlit.attacks.losses import attack_loss, dlr_loss, margin_loss, misclassified
from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.registry import build_attack, inside_threat_model, register_attack, registered_attacks
from robustlit.attacks.spec import AttackSpec
from robustlit.attacks.threat_model import Norm, RandomStart, ThreatModel

__all__ = [
    "AttackSpec",
    "Bounds",
    "LogBarrierThreatModel",
    "Norm",
    "RandomStart",
    "ThreatModel",
    "attack_loss",
    "attack_mode",
    "build_attack",
    "check_gradients_available",
    "dlr_loss",
    "inside_threat_model",
    "margin_loss",
    "misclassified",
    "pgd_attack",
    "project",
    "random_start",
    "register_attack",
    "registered_attacks",
]
