"""Instance-reweighted adversarial training: the shared machinery, GAIRAT and MAIL (docs/reweighting.md).

All three reweighted methods (GAIRAT, MAIL here; DRO-AT in :mod:`robustlit.methods.dro`) train on the
per-example loss of a base objective, chosen by ``base_loss``:

- ``pgd_at``: ℓ_i = CE(f(x'_i), y_i), x' from K-step PGD on CE (Madry et al. 2018; docs/adversarial_training.md);
- ``trades``: ℓ_i = CE(f(x_i), y_i) + β KL(p(x_i) ‖ p(x'_i)), x' from PGD on the KL (Zhang et al. 2019).

Baseline weightings follow their reference code: GAIRAT's weights depend on κ_i, the number of attack
iterations at which x'_i was still classified correctly (``GAIR.py``: counted at every iteration
0..K−1, so κ ∈ {0, .., K}); MAIL's on the probabilistic margin of x'_i (``mail_loss.py``). With the
TRADES objective the weights multiply the robust (KL) term only, as in MAIL's ``trades_mail``; with
PGD-AT they multiply the whole loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat
from torch import Tensor

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn
from robustlit.losses.dro import weighted_mean
from robustlit.losses.instance_weights import gairat_weights, mail_weights, probabilistic_margin
from robustlit.losses.trades import trades_kl
from robustlit.methods.adversarial import AdversarialTraining

BaseLoss = Literal["pgd_at", "trades"]


@dataclass
class AdversarialBatch:
    """One training batch after the inner maximisation.

    ``natural`` (N,) is the clean term (zeros for PGD-AT), ``robust`` (N,) the adversarial term
    (CE(f(x'), y) for PGD-AT, β·KL(p(x) ‖ p(x')) for TRADES), ``logits_adv`` the logits of x' (with
    gradient) and ``kappa`` (N,) the number of attack iterations at which x' was still correct.
    """

    x_adv: Tensor
    natural: Tensor
    robust: Tensor
    logits_adv: Tensor
    kappa: Tensor

    @property
    def losses(self) -> Tensor:
        """Per-example loss ℓ_i of the base objective (the unweighted training loss is its mean)."""
        return self.natural + self.robust


def counting_objective(objective: LossFn, y: Tensor, kappa: Tensor) -> LossFn:
    """Wrap an attack objective so that each call adds 1[argmax f(x^t) = y] to ``kappa`` (GAIRAT's κ).

    A K-step attack calls its objective once per iteration, at x^0 .. x^{K−1}, so κ ∈ {0, .., K}.
    """

    def wrapped(logits: Tensor) -> Tensor:
        kappa.add_((logits.detach().argmax(dim=1) == y).to(kappa.dtype))
        return objective(logits)

    return wrapped


class InstanceReweightedAT(AdversarialTraining):
    """Adversarial training with per-example weights on a PGD-AT or TRADES loss (base of GAIRAT, MAIL, DRO).

    Subclasses implement :meth:`instance_weights`. Before ``begin_epoch`` the weights are uniform
    (plain PGD-AT / TRADES), as in GAIRAT's warm-up. Each step logs statistics of the normalised
    weights p_i = w_i / Σ_j w_j: ``train/weights/{sum,max,min,ess}`` (ess = 1 / (N Σ p_i²) ∈ (0, 1], the
    effective-sample-size fraction); :attr:`last_weights` keeps the last batch's p.

    Args:
        base_loss: ``pgd_at`` or ``trades``.
        beta: TRADES' β (used with ``base_loss: trades`` only).
        begin_epoch: first epoch with non-uniform weights.
        **kwargs: see :class:`AdversarialTraining` (eps, step_size, steps, norm, random_start, backbone, ...).
            ``random_start`` defaults to ``uniform`` for PGD-AT and ``gaussian`` (x + 0.001 N(0, I)) for TRADES.
    """

    def __init__(
        self,
        base_loss: BaseLoss = "pgd_at",
        beta: NonNegativeFloat = 6.0,
        begin_epoch: NonNegativeInt = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if base_loss not in ("pgd_at", "trades"):
            raise ValueError(f"base_loss must be 'pgd_at' or 'trades'; got {base_loss!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        if begin_epoch < 0:
            raise ValueError(f"begin_epoch must be >= 0; got {begin_epoch}")
        self.base_loss, self.beta, self.begin_epoch = base_loss, beta, begin_epoch
        if kwargs.get("random_start") is None:
            self.random_start = "gaussian" if base_loss == "trades" else "uniform"
        self.last_weights: Tensor | None = None

    # ---- inner maximisation -------------------------------------------------------------------------
    def attack_objective(self, x: Tensor, y: Tensor) -> LossFn:
        """The per-example loss the attack maximises: CE (PGD-AT) or KL to the clean prediction (TRADES)."""
        if self.base_loss == "pgd_at":
            return lambda logits: F.cross_entropy(logits, y, reduction="none")
        with attack_mode(self.classifier, train_mode=self.attack_train_mode), torch.no_grad():
            logits_clean = self.classifier(x)
        return lambda logits: trades_kl(logits_clean, logits)

    def run_attack(self, x: Tensor, objective: LossFn) -> Tensor:
        """The inner maximiser (PGD in the training threat model); DRO-AT can swap in the log-barrier attack."""
        return self.perturb(x, objective)

    def adversarial_examples(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(x', κ): adversarial examples of the base objective and GAIRAT's per-example κ."""
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = self.run_attack(x, counting_objective(self.attack_objective(x, y), y, kappa))
        return x_adv, kappa

    def adversarial_batch(self, x: Tensor, y: Tensor) -> AdversarialBatch:
        """Attack, then evaluate the base objective's natural and robust terms in train mode."""
        x_adv, kappa = self.adversarial_examples(x, y)
        if self.base_loss == "pgd_at":
            logits_adv = self(x_adv)
            robust = F.cross_entropy(logits_adv, y, reduction="none")
            natural = torch.zeros_like(robust)
        else:
            logits_clean = self(x)
            logits_adv = self(x_adv)
            natural = F.cross_entropy(logits_clean, y, reduction="none")
            robust = self.beta * trades_kl(logits_clean, logits_adv)
        return AdversarialBatch(x_adv, natural, robust, logits_adv, kappa)

    # ---- weighting ----------------------------------------------------------------------------------
    def instance_weights(self, batch: AdversarialBatch, y: Tensor) -> Tensor:
        """Detached per-example weights (N,) averaging 1 over the batch (uniform in this base class)."""
        return torch.ones_like(batch.robust)

    def weights_active(self) -> bool:
        return self.current_epoch >= self.begin_epoch

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Unweighted per-example loss of the base objective (PGD-AT or TRADES)."""
        return self.adversarial_batch(x, y).losses

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """mean_i natural_i + (1/N) Σ_i w_i robust_i with weights w of mean 1 (uniform before ``begin_epoch``)."""
        batch = self.adversarial_batch(x, y)
        weights = self.instance_weights(batch, y) if self.weights_active() else torch.ones_like(batch.robust)
        self.log_weight_statistics(weights)
        return batch.natural.mean() + weighted_mean(batch.robust, weights.detach())

    def log_weight_statistics(self, weights: Tensor) -> None:
        """Log the normalised weights' sum (= 1), max, min and effective-sample-size fraction."""
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
        self.log_dict(stats, on_step=False, on_epoch=True, batch_size=share.numel(), sync_dist=True)


class GAIRAT(InstanceReweightedAT):
    """Geometry-aware instance-reweighted AT (Zhang et al., ICLR 2021; docs/reweighting.md).

    w_i ∝ ½ (1 + tanh(λ + 5 (1 − 2 κ_i / K))), normalised to mean 1 over the batch: examples the attack
    flips early (small κ, close to the decision boundary) get the largest weights.

    Args:
        lam: λ of the Tanh weight (reference default −1; larger λ flattens the weights).
        begin_epoch: first reweighted epoch (reference: 60 of 120); uniform weights before.
        **kwargs: see :class:`InstanceReweightedAT`.
    """

    def __init__(self, lam: float = -1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lam = lam

    def instance_weights(self, batch: AdversarialBatch, y: Tensor) -> Tensor:
        return gairat_weights(batch.kappa, self.steps, lam=self.lam, normalise=True)


class MAIL(InstanceReweightedAT):
    """Margin-aware instance reweighting (Wang et al., NeurIPS 2021; docs/reweighting.md).

    w_i ∝ sigmoid(slope · (PM_i + bias)) with the probabilistic margin PM_i = max_{k≠y} p_k(x'_i) − p_y(x'_i),
    normalised to mean 1 over the batch (``normalise: false`` uses the reference's fixed factor 3 instead).

    Args:
        slope: sigmoid slope (reference default 1.0).
        bias: margin offset (reference default −1.5).
        normalise: rescale the weights to mean 1 per batch (default) or use 3 · sigmoid(...) as-is.
        **kwargs: see :class:`InstanceReweightedAT` (reference default objective: ``base_loss: trades``, β = 5).
    """

    def __init__(self, slope: PositiveFloat = 1.0, bias: float = -1.5, normalise: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if slope <= 0:
            raise ValueError(f"slope must be > 0; got {slope}")
        self.slope, self.bias, self.normalise = slope, bias, normalise

    def instance_weights(self, batch: AdversarialBatch, y: Tensor) -> Tensor:
        margin = probabilistic_margin(batch.logits_adv, y)
        return mail_weights(margin, self.slope, self.bias, normalise=self.normalise, scale=3.0)
