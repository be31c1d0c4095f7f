"""Adversarial weight perturbation (AWP; Wu et al., NeurIPS 2020, Algorithm 1) on PGD-AT, TRADES and MART."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt
from torch import Tensor

from robustlit.methods.adversarial import AdversarialTraining
from robustlit.methods.mart import MART
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.trades import TRADES
from robustlit.utils.weight_perturbation import WeightPerturbation, adversarial_weight_perturbation


class AdversarialWeightPerturbation(AdversarialTraining):
    """Mixin: each step perturbs the weights adversarially before computing the gradient.

    Per training step (Wu et al. 2020, Algorithm 1): (1) x' from the method's inner maximisation at
    the weights w; (2) with x' fixed, one normalised ascent step of the method's unweighted objective
    (1/N) Σ_i ℓ_i(w) gives v, ‖v_l‖ = γ ‖w_l‖ per weight matrix / kernel
    (:mod:`robustlit.utils.weight_perturbation`); (3) the training loss and its gradient are computed
    at w + v, with the same x'; (4) v is removed right after the backward pass (``on_after_backward``),
    so the optimizer steps from w with the gradient taken at w + v. The authors' code removes v after
    the optimizer step; both are the same update for optimizers whose step does not depend on w
    (SGD without weight decay, Adam), and differ by γ-relative amounts in the weight-decay term.

    Combine it with a method by listing it first: ``class MyAWP(AdversarialWeightPerturbation, MyMethod)``.
    Under DDP each process perturbs with the gradient of its own shard of the batch.

    Args:
        awp_gamma: relative size γ of the weight perturbation (0 switches AWP off).
        awp_warmup: first epoch (0-based) with weight perturbation.
        **kwargs: see the combined method.
    """

    def __init__(self, awp_gamma: NonNegativeFloat = 5e-3, awp_warmup: NonNegativeInt = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if awp_gamma < 0 or awp_warmup < 0:
            raise ValueError(f"awp_gamma and awp_warmup must be >= 0; got {awp_gamma}, {awp_warmup}")
        self.awp_gamma = awp_gamma
        self.awp_warmup = awp_warmup
        self.weight_perturbation: WeightPerturbation | None = None
        self._fixed_examples: tuple[Tensor, Tensor] | None = None

    @property
    def awp_active(self) -> bool:
        """Whether this step perturbs the weights (γ > 0 and warm-up over)."""
        return self.awp_gamma > 0 and self.current_epoch >= self.awp_warmup

    def adversarial_examples(self, x: Tensor, y: Tensor, kappa: Tensor | None = None) -> Tensor:
        """The method's x'; within one AWP step, the x' (and κ) generated at the unperturbed weights."""
        if self._fixed_examples is None:
            return super().adversarial_examples(x, y, kappa)
        x_adv, fixed_kappa = self._fixed_examples
        if kappa is not None:
            kappa.copy_(fixed_kappa)
        return x_adv

    @contextmanager
    def fixed_adversarial_examples(self, x_adv: Tensor, kappa: Tensor) -> Iterator[None]:
        """Within the block, :meth:`adversarial_examples` returns ``x_adv`` (and copies ``kappa``)."""
        self._fixed_examples = (x_adv, kappa)
        try:
            yield
        finally:
            self._fixed_examples = None

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        self.remove_weight_perturbation()
        if not self.awp_active:
            return super().training_loss(x, y)
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = self.adversarial_examples(x, y, kappa)
        with self.fixed_adversarial_examples(x_adv, kappa):
            perturbation = adversarial_weight_perturbation(
                self.classifier, lambda: self.per_example_loss(x, y).mean(), self.awp_gamma
            )
            perturbation.apply()
            self.weight_perturbation = perturbation
            loss = super().training_loss(x, y)
        if not torch.isfinite(loss):
            self.remove_weight_perturbation()  # the step is abandoned: leave w as it was
        return loss

    def remove_weight_perturbation(self) -> None:
        """Restore the unperturbed weights w (a no-op when none is applied)."""
        if self.weight_perturbation is not None:
            self.weight_perturbation.remove()
            self.weight_perturbation = None

    def on_after_backward(self) -> None:
        """The gradient at w + v is computed: restore w before the optimizer step."""
        super().on_after_backward()
        self.remove_weight_perturbation()


class PGDATAWP(AdversarialWeightPerturbation, PGDAT):
    """PGD-AT with adversarial weight perturbation (AT-AWP; Wu et al. 2020): the ascent and the training
    loss are CE(f(x'), y). See :class:`AdversarialWeightPerturbation` (``awp_gamma``, ``awp_warmup``) and
    :class:`~robustlit.methods.PGDAT`."""


class TRADESAWP(AdversarialWeightPerturbation, TRADES):
    """TRADES with adversarial weight perturbation (TRADES-AWP; Wu et al. 2020): the ascent and the training
    loss are CE(f(x), y) + β KL(p(x) ‖ p(x')). See :class:`AdversarialWeightPerturbation` and
    :class:`~robustlit.methods.TRADES`."""


class MARTAWP(AdversarialWeightPerturbation, MART):
    """MART with adversarial weight perturbation (MART-AWP; Wu et al. 2020). See
    :class:`AdversarialWeightPerturbation` and :class:`~robustlit.methods.MART`."""
