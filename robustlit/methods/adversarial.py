"""Adversarial training: min_θ E[ natural(x, y) + w · robust(x', y) ] with x' from an inner maximisation.

Every adversarial objective (PGD-AT, TRADES, a user's subclass) is written as two per-example terms,
a natural term and a robust term (:class:`~robustlit.losses.instance_weights.LossTerms`), and trained
on (1/N) Σ_i [natural_i + w_i robust_i]. The weights w_i come from one hook,
:meth:`AdversarialTraining.robust_term_weights`: uniform by default, or a reweighting strategy passed
as ``weighting`` (GAIRAT, MAIL, DRO; see :mod:`robustlit.losses.instance_weights`), or a user override.
The inner maximisation has one name, :meth:`AdversarialTraining.adversarial_examples`, and one
threat-model value, :attr:`AdversarialTraining.threat_model`.
"""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt
from torch import Tensor

from robustlit.attacks.eps import EIGHT_OVER_255, Eps
from robustlit.attacks.pgd import LossFn
from robustlit.attacks.threat_model import Norm, RandomStart, ThreatModel
from robustlit.losses.instance_weights import InstanceWeighting, LossTerms, counting_objective
from robustlit.methods.base import RobustClassifier


class AdversarialTraining(RobustClassifier):
    """Base of PGD-AT, TRADES and their reweighted variants: owns the training-time threat model.

    A subclass defines its objective with :meth:`attack_loss` (what the inner maximisation ascends)
    and :meth:`loss_terms` (the per-example natural and robust terms); reweighting is orthogonal to it.
    With a ``weighting``, each step logs statistics of the normalised weights p_i = w_i / Σ_j w_j:
    ``train/weights/{sum,max,min,ess}`` (ess = 1 / (N Σ p_i²) ∈ (0, 1], the effective-sample-size
    fraction), plus the strategy's own values; :attr:`last_weights` keeps the last batch's p.

    Args:
        eps: radius of the training threat model in pixel units, a number or a fraction (``8/255``); ``Linf``:
            at most 1, ``L2``: at most sqrt(d) for inputs of d values in [0, 1] (docs/evaluation.md).
        step_size: PGD step size ``a``.
        steps: PGD iterations ``K``.
        norm: ``Linf`` or ``L2``.
        random_start: ``uniform`` (Madry), ``gaussian`` (x + 0.001 N(0, I), TRADES) or ``none``;
            default: the objective's own (:attr:`default_random_start`).
        attack_train_mode: generate training attacks with batch-norm in train mode (Madry-TF
            semantics; running statistics are still frozen). Default: eval mode (TRADES/MART).
        weighting: a reweighting strategy (``class_path: robustlit.losses.GAIRATWeights`` etc.);
            ``None``: uniform weights.
        **kwargs: see :class:`RobustClassifier` (backbone, optimizer, ...).
    """

    default_random_start: RandomStart = "uniform"

    def __init__(
        self,
        eps: Eps = EIGHT_OVER_255,
        step_size: NonNegativeFloat = 2 / 255,
        steps: PositiveInt = 10,
        norm: Norm = "Linf",
        random_start: RandomStart | None = None,
        attack_train_mode: bool = False,
        weighting: InstanceWeighting | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.threat_model = ThreatModel(
            norm=norm,
            eps=eps,
            step_size=step_size,
            steps=steps,
            random_start=random_start or self.default_random_start,
            bounds=self.bounds,
        )
        self.attack_train_mode = attack_train_mode
        self.weighting = weighting
        self.last_weights: Tensor | None = None

    # ---- the objective --------------------------------------------------------------------------------
    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """The per-example loss (logits -> (N,)) that the inner maximisation ascends."""
        raise NotImplementedError(f"{type(self).__name__} must define attack_loss(x, y)")

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        """Attack, then the per-example natural and robust terms in train mode (with gradient)."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_terms(x, y)")

    # ---- the inner maximisation -----------------------------------------------------------------------
    def adversarial_examples(self, x: Tensor, y: Tensor, kappa: Tensor | None = None) -> Tensor:
        """x' ≈ argmax_{x' ∈ B_ε(x) ∩ bounds} :meth:`attack_loss` in :attr:`threat_model` (detached).

        If ``kappa`` (N,) is given, each attack iteration adds 1[argmax f(x^t) = y] to it (GAIRAT's κ).
        """
        loss_fn = self.attack_loss(x, y)
        if kappa is not None:
            loss_fn = counting_objective(loss_fn, y, kappa)
        return self.threat_model.maximize(self.classifier, x, loss_fn, train_mode=self.attack_train_mode)

    # ---- reweighting ------------------------------------------------------------------------------------
    def robust_term_weights(self, terms: LossTerms) -> Tensor:
        """Per-example weights w (N,) of the robust term: loss = (1/N) Σ_i [natural_i + w_i robust_i].

        The weights are used as returned (detach them to treat them as constants, as GAIRAT, MAIL and
        DRO do). Default: the ``weighting`` strategy's weights from its ``begin_epoch`` on, else ones.
        """
        if self.weighting is None or self.current_epoch < self.weighting.begin_epoch:
            return torch.ones_like(terms.robust)
        return self.weighting(terms)

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Unweighted per-example loss ℓ_i = natural_i + robust_i of the objective."""
        return self.loss_terms(x, y).losses

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """(1/N) Σ_i [natural_i + w_i robust_i]; the weighting's ``weighted_term`` may move w to the natural
        term or to both (whole examples, as DRO)."""
        terms = self.loss_terms(x, y)
        weights = self.robust_term_weights(terms)
        ones = torch.ones_like(weights)
        natural_weights = weights if getattr(self.weighting, "weights_natural_term", False) else ones
        robust_weights = weights if getattr(self.weighting, "weights_robust_term", True) else ones
        if self.weighting is not None:
            self.log_weight_statistics(weights, len(y))
        natural, robust = natural_weights * terms.natural, robust_weights * terms.robust
        self.log_training_terms(natural, robust, terms)
        return (natural + robust).mean()

    def log_training_terms(self, natural: Tensor, robust: Tensor, terms: LossTerms) -> None:
        """Log each (weighted) loss term, ``train/loss/natural`` and ``train/loss/robust``, and the clean and
        adversarial training accuracy of the logits the objective computed (``train/acc/clean``,
        ``train/acc/adversarial``); nothing is recomputed."""
        if self._trainer is None or not self.training:
            return
        size = len(terms.y)
        self.log("train/loss/natural", natural.detach().mean(), on_step=False, on_epoch=True, batch_size=size)
        self.log("train/loss/robust", robust.detach().mean(), on_step=False, on_epoch=True, batch_size=size)
        if terms.logits_clean is not None:
            self.log_training_accuracy("clean", terms.logits_clean, terms.y)
        self.log_training_accuracy("adversarial", terms.logits_adv, terms.y)

    def log_weight_statistics(self, weights: Tensor, batch_size: int) -> None:
        """Log the normalised weights' sum (= 1), max, min, effective-sample-size fraction, and the
        weighting strategy's own statistics (e.g. DRO's ``train/dro/log_u``)."""
        weights = weights.detach()
        share = weights / weights.sum()
        self.last_weights = share
        if self._trainer is None:
            return
        stats = {
            "train/weights/sum": share.sum(),
            "train/weights/max": share.max(),
            "train/weights/min": share.min(),
            "train/weights/ess": 1.0 / (share.numel() * (share**2).sum()),
        }
        if self.weighting is not None and self.current_epoch >= self.weighting.begin_epoch:
            stats.update({f"train/{k}": v for k, v in self.weighting.statistics().items()})
        self.log_dict(stats, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
