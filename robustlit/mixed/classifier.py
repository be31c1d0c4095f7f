"""Mixed classifier of a standard and a robust model, mixed in probability space.

Bai, Anderson, Kim, Sojoudi (2023), "Improving the Accuracy-Robustness Trade-Off of Classifiers via
Adaptive Smoothing", arXiv 2301.12554; see docs/mixed_classifier.md. :class:`MixedClassifier`
returns ``log((1 - alpha) softmax(s_g z_g) + alpha softmax(s_h z_h))`` (log-probabilities, see
docs/contracts.md), with alpha constant or from a :class:`~robustlit.mixed.mixing_network.MixingNetwork`
fed by :class:`~robustlit.mixed.feature_tap.FeatureTap` hooks on both base models.

Gradients flow through alpha and through the tapped features (nothing is detached), so an attack
on the mixed classifier also attacks the mixing network, as the paper's adaptive evaluation does.
Pure torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustlit.mixed.feature_tap import FeatureTap
from robustlit.mixed.mixing_network import MixingNetwork
from robustlit.mixed.mixing_rule import mix_log_probs

__all__ = ["MixedClassifier"]


class MixedClassifier(nn.Module):
    """Mixture of a standard model g and a robust model h in probability space (Bai et al. 2023).

    ``forward(x) = log((1 - alpha(x)) softmax(scale_std * g(x)) + alpha(x) softmax(scale_rob * h(x)))``.

    Both base models are frozen: their parameters never require gradients and they stay in eval
    mode even when the mixed classifier is put in training mode (:meth:`train` is overridden).
    Input gradients still flow through them, and through alpha and the tapped features.

    Args:
        standard, robust: the base models g and h (inputs -> logits).
        alpha: a constant mixing weight in [0, 1]; when given it overrides the mixing network
            (see :meth:`set_constant_alpha`).
        mixing_network: the learned alpha(x); fed with the outputs of ``standard_layers`` (of g)
            followed by those of ``robust_layers`` (of h), names as in ``named_modules()``.
        scale_std, scale_rob: logit temperatures s_g, s_h.
        compress_alpha: passed to :meth:`MixingNetwork.forward` (None: compress iff eval mode).
            Set it to False while generating training-time attacks, as the reference does.
        gamma_head: the mixing network's output head (``"train"`` / ``"eval"``; None: the mode's own).
            Set to ``"train"`` while generating training-time attacks (Bai et al. 2023).
    """

    def __init__(
        self,
        standard: nn.Module,
        robust: nn.Module,
        alpha: float | None = None,
        mixing_network: MixingNetwork | None = None,
        standard_layers: Sequence[str] = (),
        robust_layers: Sequence[str] = (),
        scale_std: float = 1.0,
        scale_rob: float = 1.0,
        compress_alpha: bool | None = None,
        gamma_head: str | None = None,
    ) -> None:
        super().__init__()
        if alpha is None and mixing_network is None:
            raise ValueError("MixedClassifier needs a constant alpha or a mixing_network")
        self.standard = standard
        self.robust = robust
        self.mixing_network = mixing_network
        self.standard_layers = list(standard_layers)
        self.robust_layers = list(robust_layers)
        self.scale_std = float(scale_std)
        self.scale_rob = float(scale_rob)
        self.compress_alpha = compress_alpha
        self.gamma_head = gamma_head
        self.alpha: float | None = None
        if mixing_network is not None:
            n_tapped = len(self.standard_layers) + len(self.robust_layers)
            if n_tapped != len(mixing_network.in_channels):
                raise ValueError(
                    f"the mixing network takes {len(mixing_network.in_channels)} features but "
                    f"{n_tapped} layers are tapped (standard_layers + robust_layers)"
                )
            # Fail early on a wrong layer name (hooks are registered per forward, see forward_with_alpha).
            FeatureTap(standard, self.standard_layers).remove()
            FeatureTap(robust, self.robust_layers).remove()
        for base in (self.standard, self.robust):
            base.requires_grad_(False)
            base.eval()
        self.set_constant_alpha(alpha)

    def set_constant_alpha(self, alpha: float | None) -> None:
        """Use a constant alpha (e.g. for a sweep); ``None`` goes back to the mixing network."""
        if alpha is None:
            if self.mixing_network is None:
                raise ValueError("cannot unset the constant alpha: there is no mixing network")
        elif not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.alpha = None if alpha is None else float(alpha)

    def train(self, mode: bool = True) -> MixedClassifier:
        """Set the mixing network's mode; the base models always stay in eval mode."""
        super().train(mode)
        self.standard.eval()
        self.robust.eval()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> MixedClassifier:
        """Like ``nn.Module.requires_grad_`` but the base models stay frozen."""
        super().requires_grad_(requires_grad)
        self.standard.requires_grad_(False)
        self.robust.requires_grad_(False)
        return self

    def forward_with_alpha(self, x: Tensor, surrogate: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(log_probs (N, K), alpha (N,), gamma_logit (N,))``.

        With a constant alpha, ``gamma_logit = logit(alpha)`` (-inf / +inf at alpha = 0 / 1).
        ``surrogate`` is accepted for the attack interface and ignored: this mixture is differentiable.
        """
        if self.alpha is not None:
            logits_std, logits_rob = self.standard(x), self.robust(x)
            alpha = torch.full((x.shape[0],), self.alpha, device=logits_std.device, dtype=torch.float32)
            gamma_logit = torch.logit(alpha)
        else:
            assert self.mixing_network is not None
            # Hooks live only for this forward: a deep copy / DataParallel replica taps its own modules.
            with (
                FeatureTap(self.standard, self.standard_layers) as tap_std,
                FeatureTap(self.robust, self.robust_layers) as tap_rob,
            ):
                logits_std, logits_rob = self.standard(x), self.robust(x)
                features = tap_std.features + tap_rob.features
            head = getattr(self, "gamma_head", None)
            options = {} if head is None else {"head": head}  # any detector module; MixingNetwork takes `head`
            alpha, gamma_logit = self.mixing_network(features, compress=self.compress_alpha, **options)
        log_probs = mix_log_probs(logits_std, logits_rob, alpha, self.scale_std, self.scale_rob)
        return log_probs, alpha, gamma_logit

    def forward(self, x: Tensor) -> Tensor:
        """Mixture log-probabilities (N, K); ``softmax`` of the output is the mixture."""
        return self.forward_with_alpha(x)[0]
