"""Fast (single-step) adversarial training: FGSM-RS (Wong, Rice and Kolter, ICLR 2020) and N-FGSM (de Jorge
et al., NeurIPS 2022) (docs/fast_adversarial_training.md). Their cyclic learning rate is the callback
:class:`robustlit.callbacks.CyclicLearningRate`, usable with any method."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat
from torch import Tensor

from robustlit.attacks.eps import EIGHT_OVER_255, Eps
from robustlit.attacks.pgd import LossFn
from robustlit.attacks.single_step import single_step_example
from robustlit.losses.instance_weights import LossTerms, counting_objective
from robustlit.methods.adversarial import AdversarialTraining

Variant = Literal["fgsm_rs", "n_fgsm", "fgsm"]
#: per variant: (step size / eps, noise / eps, clip the example to the eps-ball, clip the start to [0, 1])
VARIANT_DEFAULTS: dict[str, tuple[float, float, bool, bool]] = {
    # Wong et al. 2020, sec. 4 and their MNIST code: alpha = 1.25 eps, uniform start in the ball, not clipped
    "fgsm_rs": (1.25, 1.0, True, False),
    # de Jorge et al. 2022, sec. 4 and their code: alpha = eps, noise 2 eps (k = 2) clipped to [0, 1], no eps-ball
    "n_fgsm": (1.0, 2.0, False, True),
    # Goodfellow et al. 2015: no random start (prone to catastrophic overfitting)
    "fgsm": (1.0, 0.0, True, True),
}


class FastAdversarialTraining(AdversarialTraining):
    """min_θ E CE(f_θ(x'), y) with x' a single gradient-sign step from a noisy start
    (:func:`~robustlit.attacks.single_step.single_step_example`):

        x0 = x + U(-k eps, k eps) (optionally clipped to [0, 1]),   x' = clip_[0,1](P(x0 + a sign(∇_x CE(f(x0), y))))

    with P the projection onto B_eps(x) or the identity. ``variant`` picks the paper's (a, k, P):

    - ``fgsm_rs`` (default; Wong, Rice and Kolter 2020, "Fast is better than free", sec. 4): a = 1.25 eps,
      k = 1, projected. The MNIST recipe: eps 0.3, a = 0.375.
    - ``n_fgsm`` (de Jorge et al. 2022, "Make some noise", sec. 4): a = eps, k = 2, *not* projected.
    - ``fgsm`` (Goodfellow et al. 2015): a = eps, no noise, projected; catastrophically overfits at large eps.

    Terms: natural_i = 0, robust_i = CE(f(x'_i), y_i), so ``weighting`` (GAIRAT, MAIL, DRO: docs/reweighting.md)
    reweights the single-step examples as it does PGD-AT's; GAIRAT's kappa counts the one attack step.

    Args:
        eps: radius of the training threat model (Linf, pixel units, in [0, 1]), a number or a fraction (``8/255``).
        variant: ``fgsm_rs``, ``n_fgsm`` or ``fgsm``.
        step_size: a; default: the variant's (1.25 eps, eps, eps).
        noise_scale: k, the start noise in units of eps; default: the variant's (1, 2, 0).
        clip_to_eps: project x' onto the eps-ball; default: the variant's (yes, no, yes).
        clip_start: clip the noisy start x0 to [0, 1] before taking the gradient; default: the variant's (no as
            in Wong et al.'s MNIST code, yes as in de Jorge et al.'s code, yes). On MNIST, FGSM-RS with a clipped
            start catastrophically overfits in the first epoch (docs/fast_adversarial_training.md).
        **kwargs: see :class:`AdversarialTraining` (weighting, attack_train_mode, backbone, optimizer, ...).
    """

    default_random_start = "uniform"

    def __init__(
        self,
        eps: Eps = EIGHT_OVER_255,
        variant: Variant = "fgsm_rs",
        step_size: NonNegativeFloat | None = None,
        noise_scale: NonNegativeFloat | None = None,
        clip_to_eps: bool | None = None,
        clip_start: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if variant not in VARIANT_DEFAULTS:
            raise ValueError(f"variant must be one of {sorted(VARIANT_DEFAULTS)}; got {variant!r}")
        if kwargs.get("norm", "Linf") != "Linf":
            raise ValueError("FastAdversarialTraining implements the Linf single-step attacks only (norm: Linf)")
        eps = Eps(eps)  # "8/255" from Python too
        step_factor, noise_factor, clip, clip_first = VARIANT_DEFAULTS[variant]
        self.variant = variant
        self.noise_scale = noise_factor if noise_scale is None else float(noise_scale)
        self.clip_to_eps = clip if clip_to_eps is None else bool(clip_to_eps)
        self.clip_start = clip_first if clip_start is None else bool(clip_start)
        step = step_factor * eps if step_size is None else float(step_size)
        start = "uniform" if self.noise_scale > 0 else "none"
        super().__init__(eps=eps, step_size=step, steps=1, random_start=start, **kwargs)

    def attack_loss(self, x: Tensor, y: Tensor) -> LossFn:
        """CE(f(x'), y) per example."""
        return lambda logits: F.cross_entropy(logits, y, reduction="none")

    def adversarial_examples(self, x: Tensor, y: Tensor, kappa: Tensor | None = None) -> Tensor:
        """The variant's single-step example (detached); ``kappa`` counts a correct prediction at the start."""
        loss_fn = self.attack_loss(x, y)
        if kappa is not None:
            loss_fn = counting_objective(loss_fn, y, kappa)
        tm = self.threat_model
        return single_step_example(
            self.classifier,
            x,
            loss_fn,
            eps=tm.eps,
            step_size=tm.step_size,
            noise=self.noise_scale * tm.eps,
            clip_to_eps=self.clip_to_eps,
            clip_start=self.clip_start,
            bounds=tm.bounds,
            train_mode=self.attack_train_mode,
        )

    def loss_terms(self, x: Tensor, y: Tensor) -> LossTerms:
        kappa = torch.zeros(x.shape[0], device=x.device)
        x_adv = self.adversarial_examples(x, y, kappa)
        logits_adv = self(x_adv)
        robust = F.cross_entropy(logits_adv, y, reduction="none")
        return LossTerms(torch.zeros_like(robust), robust, y, logits_adv, kappa, 1)
