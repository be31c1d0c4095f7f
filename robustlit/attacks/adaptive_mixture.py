"""Old import path of the mixed classifier's attacks; they live in :mod:`robustlit.mixed`."""

from robustlit.mixed.adaptive_attack import AlphaExposed, adaptive_mixture_loss, adaptive_pgd_attack
from robustlit.mixed.training_attack import randomized_mixture_attack

__all__ = ["AlphaExposed", "adaptive_mixture_loss", "adaptive_pgd_attack", "randomized_mixture_attack"]
