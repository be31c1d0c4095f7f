"""TRADES (Zhang et al., ICML 2019)."""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse.typing import NonNegativeFloat
from torch import Tensor

from robustlit.attacks.ball import RandomStart
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn
from robustlit.losses.instance_weights import LossTerms
from robustlit.losses.trades import trades_kl, trades_terms
from robustlit.methods.adversarial import AdversarialTraining


class TRADESObjective:
    """The TRADES objective as a component: natural_i = CE(f(x_i), y_i), robust_i = β KL(p(x_i) ‖ p(x'_i)), x'
    maximising the KL to the clean prediction (Zhang et al. 2019, eq. 5). Used by :class:`TRADES` and by the
    reweighted methods (``base_loss: trades``).

    Reference behaviour (TRADES/trades.py): the inner maximisation runs in eval mode from
    x + 0.001·N(0, I) on the KL to the clean prediction; the outer loss is computed in train mode
    with the clean distribution *not* detached. One deliberate difference: the clean batch is
    forwarded once (the reference forwards it twice); gradients are identical, only batch-norm
    running statistics receive one clean update per step instead of two.
    """

    default_random_start: RandomStart = "gaussian"

    def __init__(self, beta: float = 6.0) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        self.beta = beta

    def attack_loss(self, method: AdversarialTraining, x: Tensor, y: Tensor) -> LossFn:
        """KL(p(x) ‖ p(x')) per example, the clean distribution fixed (computed once, in attack mode)."""
        with attack_mode(method.classifier, train_mode=method.attack_train_mode), torch.no_grad():
            logits_clean = method.classifier(x)
        return lambda logits: trades_kl(logits_clean, logits)

    def loss_terms(self, method: AdversarialTraining, x: Tensor, y: Tensor) -> LossTerms:
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = method.adversarial_examples(x, y, kappa) if self.beta > 0 else x
        logits_clean = method(x)
        logits_adv = method(x_adv) if self.beta > 0 else logits_clean
        natural, robust = trades_terms(logits_clean, logits_adv, y, self.beta)
        return LossTerms(natural, robust, y, logits_adv, kappa, method.threat_model.steps, logits_clean)


class TRADES(AdversarialTraining):
    """min_θ E[ CE(f(x), y) + β · max_{x' ∈ B_ε(x)} KL(p(x) ‖ p(x')) ] (Zhang et al. 2019, eq. 5).

    Terms: natural_i = CE(f(x_i), y_i), robust_i = β KL(p(x_i) ‖ p(x'_i)) (:class:`TRADESObjective`, which
    also states the reference behaviour); a ``weighting`` (or an override of :meth:`robust_term_weights`)
    multiplies the KL term only, as MAIL's ``trades_mail``.

    Args:
        beta: weight β = 1/λ of the robustness regulariser (β = 0 is plain cross-entropy, no attack).
        **kwargs: see :class:`AdversarialTraining` (eps, step_size, steps, weighting, ...).
    """

    default_random_start = TRADESObjective.default_random_start

    def __init__(self, beta: NonNegativeFloat = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = TRADESObjective(beta)

    @property
    def beta(self) -> float:
        """TRADES' β (the objective's)."""
        return self.objective.beta

    @beta.setter
    def beta(self, value: float) -> None:
        self.objective.beta = value

    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """KL(p(x) ‖ p(x')) per example, the clean distribution fixed (computed once, in attack mode)."""
        return self.objective.attack_loss(self, x, y)

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        return self.objective.loss_terms(self, x, y)
