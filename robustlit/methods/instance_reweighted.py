"""GAIRAT and MAIL under their own names: PGD-AT or TRADES with a reweighting strategy.

Reweighting is a constructor argument of every adversarial objective, e.g. MAIL on TRADES is

    model:
      class_path: robustlit.methods.TRADES
      init_args:
        beta: 5.0
        weighting: {class_path: robustlit.losses.MAILWeights, init_args: {slope: 1.0, bias: -1.5}}

The classes here keep the flat configuration of the reweighted methods (``base_loss``, ``beta``,
``begin_epoch`` and the strategy's own keys): ``base_loss`` names the objective whose own terms are
reweighted, a component the method holds (:class:`~robustlit.methods.pgd_at.PGDATObjective` or
:class:`~robustlit.methods.trades.TRADESObjective`, the very objects :class:`PGDAT` and :class:`TRADES` use),
so TRADES is defined once, in :mod:`robustlit.methods.trades`.
Which term the weights multiply is ``weighted_term`` (``robust``, ``natural`` or ``whole``; see
:mod:`robustlit.losses.instance_weights` and docs/reweighting.md), by default each paper's own choice:
MAIL weights the robust term (the adversarial CE of PGD-AT, the KL of TRADES: the authors' ``mail_loss.py``);
GAIRAT weights the adversarial CE of PGD-AT and, on TRADES, the natural CE (the authors' GAIR-TRADES,
``GAIRLoss.py`` with ``nat_boost`` on, ``adv_boost`` off); DRO-AT weights the whole loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat
from torch import Tensor

from robustlit.attacks.pgd import LossFn
from robustlit.losses.instance_weights import GAIRATWeights, LossTerms, MAILWeights, WeightedTerm
from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.pgd_at import PGDATObjective
from robustlit.methods.trades import TRADESObjective

BaseLoss = Literal["pgd_at", "trades"]

#: The objective each ``base_loss`` names, built from ``beta``; its attack_loss / loss_terms are used as they are.
OBJECTIVES: dict[str, Callable[[float], PGDATObjective | TRADESObjective]] = {
    "pgd_at": lambda beta: PGDATObjective(),
    "trades": TRADESObjective,
}


class InstanceReweightedAT(AdversarialTraining):
    """PGD-AT or TRADES (``base_loss``) whose terms a subclass's ``weighting`` reweights (uniform here).

    Args:
        base_loss: ``pgd_at`` or ``trades``.
        beta: TRADES' β (used with ``base_loss: trades`` only).
        begin_epoch: first epoch with non-uniform weights (uniform before: GAIRAT's warm-up).
        **kwargs: see :class:`AdversarialTraining` (eps, step_size, steps, norm, random_start, backbone, ...).
            ``random_start`` defaults to the objective's: ``uniform`` for PGD-AT, ``gaussian`` for TRADES.
    """

    def __init__(
        self,
        base_loss: BaseLoss = "pgd_at",
        beta: NonNegativeFloat = 6.0,
        begin_epoch: NonNegativeInt = 0,
        **kwargs: Any,
    ) -> None:
        if base_loss not in OBJECTIVES:
            raise ValueError(f"base_loss must be one of {sorted(OBJECTIVES)}; got {base_loss!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        if begin_epoch < 0:
            raise ValueError(f"begin_epoch must be >= 0; got {begin_epoch}")
        if kwargs.get("weighting") is not None:
            raise ValueError(
                f"{type(self).__name__} builds its own weighting; to combine another strategy with an objective "
                "use robustlit.methods.PGDAT or TRADES with `weighting:`"
            )
        objective = OBJECTIVES[base_loss](beta)
        kwargs["random_start"] = kwargs.get("random_start") or objective.default_random_start
        super().__init__(**kwargs)
        self.objective = objective
        self.base_loss, self.beta, self.begin_epoch = base_loss, beta, begin_epoch

    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """The objective's own: CE (PGD-AT) or KL to the clean prediction (TRADES)."""
        return self.objective.attack_loss(self, x, y)  # a component, not a sibling class's method

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        """The objective's own terms (PGD-AT: 0 and CE(f(x'), y); TRADES: CE(f(x), y) and β KL)."""
        return self.objective.loss_terms(self, x, y)


class GAIRAT(InstanceReweightedAT):
    """Geometry-aware instance-reweighted AT (Zhang et al., ICLR 2021): :class:`GAIRATWeights` on PGD-AT/TRADES.

    w_i ∝ ½ (1 + tanh(λ + 5 (1 − 2 κ_i / K))), normalised to mean 1 over the batch, where κ_i counts the
    attack iterations at which x'_i was still classified correctly: examples the attack flips early
    (close to the decision boundary) get the largest weights.

    Args:
        lam: λ of the Tanh weight (reference default −1; larger λ flattens the weights).
        begin_epoch: first reweighted epoch (reference: 60 of 120); uniform weights before.
        weighted_term: ``robust``, ``natural`` or ``whole``; default (``null``): the authors' choice, the
            adversarial CE on ``base_loss: pgd_at`` (``robust``) and the natural CE on ``trades`` (``natural``:
            GAIR-TRADES' ``nat_boost``).
        **kwargs: see :class:`InstanceReweightedAT`.
    """

    def __init__(self, lam: float = -1.0, weighted_term: WeightedTerm | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lam = lam
        term = weighted_term or ("natural" if self.base_loss == "trades" else "robust")
        self.weighting = GAIRATWeights(lam=lam, begin_epoch=self.begin_epoch, weighted_term=term)


class MAIL(InstanceReweightedAT):
    """Margin-aware instance reweighting (Wang et al., NeurIPS 2021): :class:`MAILWeights` on PGD-AT/TRADES.

    w_i = 3 · sigmoid(slope · (PM_i + bias)) with the probabilistic margin PM_i = max_{k≠y} p_k(x'_i) − p_y(x'_i),
    unnormalised as the authors define it (``mail_loss.py``); ``normalise: true`` rescales to mean 1 per batch.

    Args:
        slope: sigmoid slope (reference default 1.0).
        bias: margin offset (reference default −1.5).
        normalise: rescale the weights to mean 1 per batch (default: no, 3 · sigmoid(...) as the authors).
        weighted_term: ``robust`` (default, the authors'), ``natural`` or ``whole``.
        **kwargs: see :class:`InstanceReweightedAT` (reference default objective: ``base_loss: trades``, β = 5).
    """

    def __init__(
        self,
        slope: PositiveFloat = 1.0,
        bias: float = -1.5,
        normalise: bool = False,
        weighted_term: WeightedTerm = "robust",
        **kwargs: Any,
    ) -> None:
        if slope <= 0:
            raise ValueError(f"slope must be > 0; got {slope}")
        super().__init__(**kwargs)
        self.slope, self.bias, self.normalise = slope, bias, normalise
        self.weighting = MAILWeights(
            slope, bias, normalise=normalise, begin_epoch=self.begin_epoch, weighted_term=weighted_term
        )
