"""Instance reweighting of an adversarial objective: the per-example terms, the weighting interface,
and the GAIRAT and MAIL weights.

An adversarial objective exposes per example i a natural term and a robust term (:class:`LossTerms`;
PGD-AT: 0 and CE(f(x'_i), y_i); TRADES, Zhang et al. 2019 eq. 5: CE(f(x_i), y_i) and
β KL(p(x_i) ‖ p(x'_i))). A reweighting strategy (:class:`InstanceWeighting`) maps these terms to
detached per-example weights w_i, and the training loss becomes (1/N) Σ_i [natural_i + w_i robust_i]
(``weighted_term: robust``), (1/N) Σ_i [w_i natural_i + robust_i] (``natural``) or (1/N) Σ_i w_i
(natural_i + robust_i) (``whole``). Each strategy defaults to its paper's choice (docs/reweighting.md):

- GAIRAT (Zhang et al., ICLR 2021): ``robust`` (on PGD-AT the adversarial CE, the only term); the
  authors' GAIR-TRADES weights the *natural* CE instead (their ``GAIRLoss.py``, ``nat_boost`` on and
  ``adv_boost`` off by default), which :class:`robustlit.methods.GAIRAT` selects with ``base_loss: trades``;
- MAIL (Wang et al., NeurIPS 2021): ``robust`` (the authors' ``mail_loss.py``: the adversarial CE of
  MAIL-AT, the KL term of MAIL-TRADES);
- DRO / DONE (Sow et al., ICLR 2024): ``whole`` (the KL-DRO weights act on each example's loss).

Normalisation: GAIRAT's weights are rescaled to average exactly 1 over the batch (v_i ← N v_i / Σ_j v_j),
as its authors' code does. MAIL's authors use w_i = 3 · sigmoid(slope · (PM_i + bias)) *without*
batch normalisation (``mail_loss.py``, ``weight_assign``), which :func:`mail_weights` returns by default;
``normalise=True`` rescales to mean 1 instead (an ablation: it changes the effective β).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

#: Which term of the objective the weights multiply: the robust term, the natural term, or both (whole examples).
WeightedTerm = Literal["robust", "natural", "whole"]


def _normalise_to_mean_one(weights: Tensor) -> Tensor:
    return weights * (weights.numel() / weights.sum())


def gairat_weights(
    kappa: Tensor, num_steps: int, lam: float = -1.0, normalise: bool = True, floor_half: bool = False
) -> Tensor:
    """GAIRAT "Tanh" weights v_i = ½ (1 + tanh(λ + 5 (1 − 2 κ_i / K))) (Zhang et al., ICLR 2021).

    ``kappa`` holds κ_i ∈ {0, .., K}, the number of PGD steps example i survived before being
    misclassified (κ = 0: misclassified from the start, closest to the boundary, largest weight);
    ``num_steps`` is K. The weight decreases with κ. ``floor_half=True`` uses ⌊K/2⌋ in place of K/2 as
    the reference code does (identical for even K, e.g. the default K = 10). ``lam`` is λ (default −1,
    as in the reference). Returns detached weights with mean 1 unless ``normalise=False``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps K must be >= 1; got {num_steps}")
    if not kappa.is_floating_point():
        kappa = kappa.to(torch.get_default_dtype())
    kappa = kappa.detach()
    if (kappa < 0).any() or (kappa > num_steps).any():
        raise ValueError(f"kappa must lie in [0, num_steps={num_steps}]")
    half = float(num_steps // 2) if floor_half else num_steps / 2
    if half == 0:
        raise ValueError("floor_half=True needs num_steps >= 2")
    weights = 0.5 * (1.0 + torch.tanh(lam + 5.0 * (half - kappa) / half))
    return _normalise_to_mean_one(weights) if normalise else weights


def probabilistic_margin(logits: Tensor, y: Tensor) -> Tensor:
    """MAIL's probabilistic margin PM_i = max_{k≠y_i} p_k − p_{y_i}, p = softmax(logits), in [−1, 1].

    Compute it on the adversarial example's logits. Negative: correctly classified (far from the
    boundary for PM → −1); positive: misclassified. Returns a detached tensor.
    """
    probs = torch.softmax(logits.detach(), dim=1)
    true_prob = probs.gather(1, y.view(-1, 1)).squeeze(1)
    others = probs.scatter(1, y.view(-1, 1), -1.0)
    return others.max(dim=1).values - true_prob


def mail_weights(
    margin: Tensor, slope: float = 1.0, bias: float = -1.5, normalise: bool = False, scale: float = 3.0
) -> Tensor:
    """MAIL weights v_i = scale · sigmoid(slope · (PM_i + bias)) (Wang et al., NeurIPS 2021).

    ``margin`` is the probabilistic margin (:func:`probabilistic_margin`); the weight increases with it
    (less robust examples get more weight) for slope > 0. The defaults are the authors' definition
    (``mail_loss.py``, ``weight_assign``, with ``train.py``'s slope = 1, bias = −1.5): 3 · sigmoid(PM − 1.5),
    not normalised, so each weight lies in (0, 3) and the batch mean varies with the margins.
    ``normalise=True`` rescales to mean 1 over the batch (``scale`` is then irrelevant). Returns detached weights.
    """
    weights = scale * torch.sigmoid(slope * (margin.detach() + bias))
    return _normalise_to_mean_one(weights) if normalise else weights


@dataclass
class LossTerms:
    """Per-example terms of an adversarial objective on one batch, after the inner maximisation.

    ``natural`` (N,) is the clean term (zeros for PGD-AT), ``robust`` (N,) the adversarial term
    (CE(f(x'), y) for PGD-AT, β KL(p(x) ‖ p(x')) for TRADES), ``logits_adv`` the logits of x' and
    ``logits_clean`` those of x (``None`` when the objective has no clean forward), both with gradient;
    ``kappa`` (N,) counts the attack iterations at which x' was still classified correctly (GAIRAT's κ,
    in {0, .., ``attack_steps``}).
    """

    natural: Tensor
    robust: Tensor
    y: Tensor
    logits_adv: Tensor
    kappa: Tensor
    attack_steps: int
    logits_clean: Tensor | None = None

    @property
    def losses(self) -> Tensor:
        """The unweighted per-example loss ℓ_i = natural_i + robust_i."""
        return self.natural + self.robust


def counting_objective(objective: Callable[[Tensor], Tensor], y: Tensor, kappa: Tensor) -> Callable[[Tensor], Tensor]:
    """Wrap an attack objective so that each call adds 1[argmax f(x^t) = y] to ``kappa`` (GAIRAT's κ).

    A K-step attack calls its objective once per iteration, at x^0 .. x^{K−1}, so κ ∈ {0, .., K}.
    """

    def wrapped(logits: Tensor) -> Tensor:
        kappa.add_((logits.detach().argmax(dim=1) == y).to(kappa.dtype))
        return objective(logits)

    return wrapped


class InstanceWeighting(nn.Module):
    """A reweighting strategy: ``weighting(terms)`` returns detached per-example weights w (N,).

    The training loss of an :class:`~robustlit.methods.adversarial.AdversarialTraining` method with this
    weighting is (1/N) Σ_i [natural_i + w_i robust_i] (``weighted_term: robust``), (1/N) Σ_i [w_i natural_i +
    robust_i] (``natural``) or (1/N) Σ_i w_i (natural_i + robust_i) (``whole``: whole examples, as DRO).
    Before ``begin_epoch`` the method uses uniform weights (GAIRAT's warm-up). A strategy with state keeps it
    in buffers (checkpointed with the method); :meth:`statistics` reports values to log after a call.

    Args:
        begin_epoch: first epoch with non-uniform weights.
        weighted_term: ``robust``, ``natural`` or ``whole`` (default: :attr:`default_weighted_term`, the
            paper's own choice).
    """

    #: The term this strategy's paper weights (see the module docstring).
    default_weighted_term: WeightedTerm = "robust"

    def __init__(self, begin_epoch: int = 0, weighted_term: WeightedTerm | None = None) -> None:
        super().__init__()
        if begin_epoch < 0:
            raise ValueError(f"begin_epoch must be >= 0; got {begin_epoch}")
        weighted_term = weighted_term or self.default_weighted_term
        if weighted_term not in get_args(WeightedTerm):
            raise ValueError(f"weighted_term must be one of {get_args(WeightedTerm)}; got {weighted_term!r}")
        self.begin_epoch = begin_epoch
        self.weighted_term: WeightedTerm = weighted_term

    @property
    def weights_natural_term(self) -> bool:
        """Whether the weights multiply the natural term (``natural`` or ``whole``)."""
        return self.weighted_term in ("natural", "whole")

    @property
    def weights_robust_term(self) -> bool:
        """Whether the weights multiply the robust term (``robust`` or ``whole``)."""
        return self.weighted_term in ("robust", "whole")

    def forward(self, terms: LossTerms) -> Tensor:
        """Detached weights (N,), by convention with mean 1 over the batch (uniform here)."""
        return torch.ones_like(terms.robust).detach()

    def statistics(self) -> dict[str, Tensor]:
        """Strategy-specific values of the last call to log under ``train/`` (none by default)."""
        return {}


class GAIRATWeights(InstanceWeighting):
    """GAIRAT (Zhang et al., ICLR 2021), its "Tanh" weight assignment: w_i ∝ ½ (1 + tanh(λ + 5 (1 − 2 κ_i / K))).

    κ_i is the number of the K attack iterations at which x'_i was still classified correctly
    (the reference ``GAIR.py`` counts at every iteration 0..K−1); the weights are normalised to mean 1
    over the batch, so examples the attack flips early (close to the decision boundary) weigh most.

    Args:
        lam: λ of the Tanh weight (reference default −1; larger λ flattens the weights).
        begin_epoch: first reweighted epoch (the reference starts half-way, epoch 60 of 120).
        weighted_term: default ``robust`` (GAIRAT on PGD-AT); the authors' GAIR-TRADES uses ``natural``.
    """

    def __init__(self, lam: float = -1.0, begin_epoch: int = 0, weighted_term: WeightedTerm | None = None) -> None:
        super().__init__(begin_epoch, weighted_term)
        self.lam = lam

    def forward(self, terms: LossTerms) -> Tensor:
        return gairat_weights(terms.kappa, terms.attack_steps, lam=self.lam, normalise=True)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, begin_epoch={self.begin_epoch}, weighted_term={self.weighted_term}"


class MAILWeights(InstanceWeighting):
    """MAIL (Wang et al., NeurIPS 2021), probabilistic-margin weights w_i = 3 · sigmoid(slope · (PM_i + bias)).

    PM_i = max_{k≠y} p_k(x'_i) − p_y(x'_i) is the probabilistic margin of the adversarial example
    (:func:`probabilistic_margin`). The weights are the authors' (``mail_loss.py``): unnormalised, in (0, 3);
    ``normalise: true`` rescales them to mean 1 over the batch instead (an ablation; it changes the
    effective β of TRADES). They multiply the robust term (the authors' MAIL-AT and MAIL-TRADES).

    Args:
        slope: sigmoid slope > 0 (reference default 1.0).
        bias: margin offset (reference default −1.5).
        normalise: rescale the weights to mean 1 per batch (default: no, as the authors).
        begin_epoch: first reweighted epoch.
        weighted_term: ``robust`` (default), ``natural`` or ``whole``.
    """

    def __init__(
        self,
        slope: float = 1.0,
        bias: float = -1.5,
        normalise: bool = False,
        begin_epoch: int = 0,
        weighted_term: WeightedTerm | None = None,
    ) -> None:
        super().__init__(begin_epoch, weighted_term)
        if not slope > 0:
            raise ValueError(f"slope must be > 0; got {slope}")
        self.slope, self.bias, self.normalise = slope, bias, normalise

    def forward(self, terms: LossTerms) -> Tensor:
        margin = probabilistic_margin(terms.logits_adv, terms.y)
        return mail_weights(margin, self.slope, self.bias, normalise=self.normalise, scale=3.0)

    def extra_repr(self) -> str:
        return (
            f"slope={self.slope}, bias={self.bias}, normalise={self.normalise}, begin_epoch={self.begin_epoch}, "
            f"weighted_term={self.weighted_term}"
        )
