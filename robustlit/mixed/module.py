"""Lightning module of the mixed classifier ("adaptive smoothing", Bai et al. 2023, arXiv 2301.12554).

``out(x) = log((1 - alpha(x)) softmax(s_g z_g(x)) + alpha(x) softmax(s_h z_h(x)))`` with frozen base
models g (accurate) and h (robust); alpha is a constant or the output of a mixing network that reads
intermediate features of both base models (forward hooks on named layers). Only the mixing network
is trained, with the recipe described in docs/mixed_classifier.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from torch import Tensor, nn

from robustlit.attacks.threat_model import Norm
from robustlit.methods.base import RobustClassifier
from robustlit.mixed.bases import MIXED_DIGITS_COMMAND, load_base_model
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.feature_tap import FeatureTap
from robustlit.mixed.loss import mixing_network_loss
from robustlit.mixed.mixing_network import MixingNetwork
from robustlit.mixed.training_attack import randomized_mixture_attack

__all__ = ["MIXED_DIGITS_COMMAND", "MixedClassifierModule"]


def _check(condition: bool, field: str, allowed: str, value: object) -> None:
    if not condition:
        raise ValueError(f"MixedClassifierModule.{field} must be {allowed}; got {value!r}")


def _feature_channels(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int]) -> list[int]:
    """Channel count of each tapped layer's output, from one forward of a zero input."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    with FeatureTap(model, layers) as tap, torch.no_grad():
        model(torch.zeros(2, *input_shape, device=device))
        return [int(f.shape[1]) for f in tap.features]


class MixedClassifierModule(RobustClassifier):
    """Mixed classifier ``log((1 - alpha) softmax(s_g z_g) + alpha softmax(s_h z_h))`` (Bai et al. 2023).

    ``self.classifier`` is ``Sequential(Normalize(0, 1), MixedClassifier)``: the base models carry
    their own normalisation, so the outer one is the identity (``mean``/``std`` linked from the data
    are accepted and ignored). :attr:`mixture` is the :class:`MixedClassifier` itself, with
    ``forward_with_alpha`` for adaptive attacks. Base models are frozen and always in eval mode; only
    the mixing network's parameters require gradients, so the optimizer sees only them.

    Training step (Bai et al. 2023; docs/mixed_classifier.md): attacked copies of the batch from
    :func:`~robustlit.mixed.training_attack.randomized_mixture_attack` on the whole mixture (running
    batch-norm statistics, the mixing network's training head, uncompressed alpha), then a buffer of
    clean (s = 0) and attacked (s = 1) examples trained with ``mixing_network_loss`` (BCE on gamma + CE
    of the mixture + their product). The saved checkpoint reloads without the base checkpoint files when
    those were trained by the CLI (their configurations are saved; ``robustlit test --ckpt_path`` works
    too); modules given in Python are pickled in the hyperparameters, as any ``nn.Module`` argument of a
    LightningModule.

    Args:
        standard_checkpoint, robust_checkpoint: robustlit checkpoints of g and h (read with
            ``robustlit.load_classifier``).
        standard, robust: the base models as ``nn.Module`` (inputs in [0, 1] -> logits); they take
            precedence over the configs and the checkpoints.
        standard_config, robust_config: filled in automatically (leave them unset): the
            hyperparameters of CLI-trained base checkpoints, used instead of the files when a saved
            mixture is reloaded. Precedence: module, then config, then checkpoint file.
        alpha: constant mixing weight in [0, 1]; ``None`` trains a mixing network.
        standard_layers, robust_layers: names (``named_modules()`` of the base model; for a robustlit
            checkpoint e.g. ``"1.features.3"``, ``"1"`` being the backbone) whose outputs feed the
            mixing network.
        input_shape: shape of one input, e.g. ``[1, 8, 8]``; used to size the mixing network.
        mixing_width, mixing_depth: mixing-network width and number of 3x3 conv layers.
        gamma_scale, gamma_bias: output head in training mode; ``eval_gamma_scale`` /
            ``eval_gamma_bias`` in eval mode (None: same as training).
        alpha_range: eval-mode alpha is compressed to ``[alpha_range[0], alpha_range[1]]`` (the paper
            uses e.g. [0.84, 0.99]: the mixture leans on h and g only tips uncertain examples).
        head_momentum: momentum of the output batch norm's running statistics, which eval mode uses
            (paper: 0.01 over thousands of steps; 0.1 suits a few hundred steps).
        train_clamp_std, clamp_gradient: the training-mode clamp of the raw score before the output batch
            norm (batch mean +- ``train_clamp_std`` std; None: no clamp) and its gradient:
            ``"straight_through"`` (every example keeps its gradient) or ``"zero"`` (the reference code's
            ``torch.clamp``: none for the examples outside the bounds); see :class:`MixingNetwork`.
        scale_std, scale_rob: logit temperatures s_g, s_h.
        eps, norm: training threat model of the randomised attack.
        eps_scale: per-example eps multiplier range (paper: U(0.4, 1.1)).
        attack_steps: per-example APGD iteration-count range (paper: about 75 on average; small for CPU).
        bce_weight: range of w in the attack loss ``(1 - w) L + w BCE(gamma, 1)`` (paper: U(0, 0.4)).
        targeted_fraction: share of attacked copies using targeted DLR instead of CE (paper: 9 of 10).
        attacked_copies: attacked copies per clean example in each training batch (paper: about 10).
        loss_weights: (c_bce, c_ce, c_prod) of ``mixing_network_loss``.
        group_scales: (clean, attacked) loss scales.
        **kwargs: see :class:`RobustClassifier` (num_classes, bounds, optimizer, lr_scheduler).
    """

    def __init__(
        self,
        standard_checkpoint: str | None = None,
        robust_checkpoint: str | None = None,
        standard: nn.Module | None = None,
        robust: nn.Module | None = None,
        standard_config: dict | None = None,
        robust_config: dict | None = None,
        alpha: ClosedUnitInterval | None = None,
        standard_layers: list[str] | None = None,
        robust_layers: list[str] | None = None,
        input_shape: list[PositiveInt] | None = None,
        mixing_width: PositiveInt = 32,
        mixing_depth: NonNegativeInt = 1,
        gamma_scale: PositiveFloat = 2.0,
        gamma_bias: float = 0.4,
        eval_gamma_scale: PositiveFloat | None = None,
        eval_gamma_bias: float | None = None,
        alpha_range: tuple[ClosedUnitInterval, ClosedUnitInterval] = (0.0, 1.0),
        head_momentum: ClosedUnitInterval = 0.1,
        train_clamp_std: PositiveFloat | None = 0.6,
        clamp_gradient: Literal["straight_through", "zero"] = "straight_through",
        scale_std: PositiveFloat = 1.0,
        scale_rob: PositiveFloat = 1.0,
        eps: NonNegativeFloat = 8 / 255,
        norm: Norm = "Linf",
        eps_scale: tuple[PositiveFloat, PositiveFloat] = (0.4, 1.1),
        attack_steps: tuple[PositiveInt, PositiveInt] = (1, 10),
        bce_weight: tuple[ClosedUnitInterval, ClosedUnitInterval] = (0.0, 0.4),
        targeted_fraction: ClosedUnitInterval = 0.9,
        attacked_copies: PositiveInt = 10,
        loss_weights: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (1.0, 0.5, 0.1),
        group_scales: tuple[NonNegativeFloat, NonNegativeFloat] = (2.0, 1.0),
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        **kwargs: Any,
    ) -> None:
        if "backbone" in kwargs:
            raise ValueError(
                "MixedClassifierModule builds its own classifier from two base models; remove `backbone` and "
                "set standard_checkpoint/robust_checkpoint (or standard/robust modules)"
            )
        _check(alpha is None or 0.0 <= alpha <= 1.0, "alpha", "null or in [0, 1]", alpha)
        _check(
            0.0 <= alpha_range[0] <= alpha_range[1] <= 1.0,
            "alpha_range",
            "0 <= low <= high <= 1",
            alpha_range,
        )
        _check(0.0 < head_momentum <= 1.0, "head_momentum", "in (0, 1]", head_momentum)
        _check(0.0 < eps_scale[0] <= eps_scale[1], "eps_scale", "0 < low <= high", eps_scale)
        _check(1 <= attack_steps[0] <= attack_steps[1], "attack_steps", "1 <= low <= high", attack_steps)
        _check(0.0 <= bce_weight[0] <= bce_weight[1] <= 1.0, "bce_weight", "0 <= low <= high <= 1", bce_weight)
        _check(eps >= 0, "eps", ">= 0", eps)
        _check(scale_std > 0 and scale_rob > 0, "scale_std/scale_rob", "> 0", (scale_std, scale_rob))
        _check(
            min(loss_weights) >= 0 and sum(loss_weights) > 0,
            "loss_weights",
            "non-negative, not all 0",
            loss_weights,
        )
        _check(min(group_scales) >= 0, "group_scales", "non-negative", group_scales)
        g, g_config = load_base_model("standard", standard, standard_config, standard_checkpoint)
        h, h_config = load_base_model("robust", robust, robust_config, robust_checkpoint)
        network = None
        if alpha is None:
            layers_g, layers_h = list(standard_layers or []), list(robust_layers or [])
            if not layers_g and not layers_h or input_shape is None:
                names = ", ".join(repr(n) for n, _ in g.named_modules() if n)
                raise ValueError(
                    "MixedClassifierModule: a mixing network (alpha: null) needs input_shape (e.g. [1, 8, 8])"
                    f" and standard_layers/robust_layers to tap; names in the standard model: {names}. "
                    "Or set a constant alpha."
                )
            channels = _feature_channels(g, layers_g, input_shape) + _feature_channels(h, layers_h, input_shape)
            network = MixingNetwork(
                channels,
                width=mixing_width,
                depth=mixing_depth,
                gamma_scale=gamma_scale,
                gamma_bias=gamma_bias,
                eval_gamma_scale=eval_gamma_scale,
                eval_gamma_bias=eval_gamma_bias,
                alpha_min=alpha_range[0],
                alpha_max=alpha_range[1],
                train_clamp_std=train_clamp_std,
                clamp_gradient=clamp_gradient,
            )
            network.bn.momentum = head_momentum
        mixture = MixedClassifier(
            g,
            h,
            alpha=alpha,
            mixing_network=network,
            standard_layers=standard_layers or [],
            robust_layers=robust_layers or [],
            scale_std=scale_std,
            scale_rob=scale_rob,
        )
        super().__init__(backbone=mixture, mean=(0.0,), std=(1.0,), **kwargs)
        # `backbone` is rebuilt, never passed back in. The base models' configurations (when they came
        # from CLI-trained checkpoints) make the mixture's checkpoint self-contained: see bases.py.
        self.remove_ignored_hparams(["backbone"])
        self.hparams["standard_config"], self.hparams["robust_config"] = g_config, h_config
        if input_shape is not None:
            self._check_num_classes(input_shape)
        self.eps, self.norm = eps, norm
        _check(attacked_copies >= 1, "attacked_copies", ">= 1", attacked_copies)
        _check(0.0 <= targeted_fraction <= 1.0, "targeted_fraction", "in [0, 1]", targeted_fraction)
        self.eps_scale, self.attack_steps = tuple(eps_scale), tuple(attack_steps)
        self.bce_weight, self.targeted_fraction, self.attacked_copies = (
            tuple(bce_weight),
            targeted_fraction,
            attacked_copies,
        )
        self.loss_weights, self.group_scales = tuple(loss_weights), tuple(group_scales)

    def _check_num_classes(self, input_shape: Sequence[int]) -> None:
        for role, model in (("standard", self.mixture.standard), ("robust", self.mixture.robust)):
            device = next(iter(model.parameters()), torch.empty(0)).device
            with torch.no_grad():
                k = model(torch.zeros(1, *input_shape, device=device)).shape[-1]
            if k != self.num_classes:
                raise ValueError(
                    f"MixedClassifierModule: the {role} base model returns {k} logits but num_classes is "
                    f"{self.num_classes}; both base models must be trained on the same classes as the data"
                )

    @property
    def mixture(self) -> MixedClassifier:
        """The :class:`MixedClassifier` (``forward_with_alpha`` for adaptive attacks)."""
        return self.classifier[1]

    # ---- training ---------------------------------------------------------------------------------
    def adversarial_examples(self, x: Tensor, y: Tensor) -> Tensor:
        """``attacked_copies`` randomised APGD attacks per example on the whole mixture (Bai et al. 2023):
        modules in eval mode (running batch-norm statistics), the mixing network's *training* head,
        uncompressed alpha. Shape ``(attacked_copies * N, ...)``, labels ``y.repeat(attacked_copies)``."""
        mixture, previous = self.mixture, (self.mixture.compress_alpha, self.mixture.gamma_head)
        mixture.compress_alpha, mixture.gamma_head = False, "train"
        try:
            return randomized_mixture_attack(
                mixture,
                x,
                y,
                eps=self.eps,
                norm=self.norm,
                eps_scale=self.eps_scale,
                steps=self.attack_steps,
                bce_weight=self.bce_weight,
                targeted_fraction=self.targeted_fraction,
                copies=self.attacked_copies,
                bounds=self.bounds,
            )
        finally:
            mixture.compress_alpha, mixture.gamma_head = previous

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """``mixing_network_loss`` on the buffer [clean (s = 0); attacked (s = 1)] of this batch."""
        if self.mixture.alpha is not None:
            raise RuntimeError("a MixedClassifierModule with a constant alpha has nothing to train")
        x_adv = self.adversarial_examples(x, y)
        inputs = torch.cat([x, x_adv])
        copies = self.attacked_copies
        labels = torch.cat([y, y.repeat(copies)])
        attacked = torch.cat([torch.zeros_like(y, dtype=torch.bool), torch.ones(copies * len(y), dtype=torch.bool)])
        log_probs, alpha, gamma = self.mixture.forward_with_alpha(inputs)
        c_bce, c_ce, c_prod = self.loss_weights
        loss = mixing_network_loss(
            log_probs,
            labels,
            gamma,
            attacked,
            c_bce,
            c_ce,
            c_prod,
            self.group_scales[0],
            self.group_scales[1],
        )
        n = len(y)
        self.log_dict(
            {"train/alpha_clean": alpha[:n].mean(), "train/alpha_attacked": alpha[n:].mean()},
            on_step=False,
            on_epoch=True,
            batch_size=n,
        )
        return loss

    # ---- evaluation --------------------------------------------------------------------------------
    def _log_alpha(self, x: Tensor, stage: str) -> None:
        with torch.no_grad():
            alpha = self.mixture.forward_with_alpha(x)[1]
        self.log(f"{stage}/alpha_clean", alpha.float().mean(), on_step=False, on_epoch=True, batch_size=len(x))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._log_alpha(batch[0], "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._log_alpha(batch[0], "test")

    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several return types
        if self.mixture.mixing_network is None or self.mixture.alpha is not None:
            raise ValueError(
                "MixedClassifierModule: with a constant alpha there is nothing to train (the base models are "
                "frozen). Evaluate it with `robustlit validate` / `robustlit test`, or set alpha: null and "
                "standard_layers/robust_layers to train a mixing network."
            )
        return super().configure_optimizers()
