"""MixedNUTS as a classifier: the nonlinearly transformed robust model mixed with the standard model's hard max.

Bai, Zhou, Patel, Sojoudi (TMLR 2024, arXiv 2402.02263); see docs/mixed_classifier.md. The transform
parameters (s, c, p) and alpha are buffers, so a calibrated classifier travels in its state dict. For
attacks, ``forward_with_alpha(x, surrogate=True)`` replaces the non-differentiable hard max of the
standard model by a low-temperature softmax (gradients through g), the only non-differentiable step of
the exact map; the robust branch is the exact transform. Pure torch, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.mixed.mixednuts import _transform64, mixednuts_log_probs
from robustlit.mixed.mixing_rule import mix_log_probs

__all__ = ["MixedNUTSClassifier"]


class MixedNUTSClassifier(nn.Module):
    """``log((1 - alpha) onehot(argmax z_g) + alpha softmax(M_h(z_h)))`` (Bai et al. 2024, eq. 5).

    With ``transform=False`` it is the constant-alpha mixture ``log((1 - alpha) softmax(z_g) + alpha
    softmax(z_h))`` of :class:`~robustlit.mixed.classifier.MixedClassifier` (no hard max, no transform),
    which is what MixedNUTS reduces to with its nonlinearity switched off.

    Args:
        standard, robust: base models g, h (inputs in [0, 1] -> logits); frozen, always in eval mode.
        s, c, p, alpha, k: transform parameters (:func:`~robustlit.mixed.mixednuts.mixednuts_transform`).
        transform: apply the MixedNUTS map and the hard max (False: plain constant-alpha mixture).
        surrogate_temperature: temperature T of ``softmax(z_g / T)``, the attack's stand-in for the hard max.
    """

    has_surrogate = True
    mixing_network = None
    compress_alpha = None
    gamma_head = None

    def __init__(
        self,
        standard: nn.Module,
        robust: nn.Module,
        s: float = 1.0,
        c: float = 0.0,
        p: float = 1.0,
        alpha: float = 0.5,
        k: int = 250,
        transform: bool = True,
        surrogate_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not surrogate_temperature > 0:
            raise ValueError(f"surrogate_temperature must be > 0; got {surrogate_temperature}")
        self.standard, self.robust = standard, robust
        for base in (standard, robust):
            base.requires_grad_(False)
            base.eval()
        self.k, self.transform, self.surrogate_temperature = int(k), bool(transform), float(surrogate_temperature)
        for name, value in (("s", s), ("c", c), ("p", p), ("alpha_value", alpha)):
            self.register_buffer(name, torch.tensor(float(value), dtype=torch.float64))
        self.register_buffer("calibrated", torch.tensor(False))
        self._override: float | None = None

    # ---- parameters ------------------------------------------------------------------------------
    def set_parameters(self, s: float, c: float, p: float, alpha: float) -> None:
        """Store a calibration (e.g. from :func:`~robustlit.mixed.mixednuts.search_mixednuts_parameters`)."""
        if not (s > 0 and p > 0 and 0.0 <= alpha <= 1.0):
            raise ValueError(f"MixedNUTS needs s > 0, p > 0, alpha in [0, 1]; got s={s}, p={p}, alpha={alpha}")
        for name, value in (("s", s), ("c", c), ("p", p), ("alpha_value", alpha)):
            getattr(self, name).fill_(float(value))
        self.calibrated.fill_(True)

    @property
    def alpha(self) -> float:
        """The mixing weight in use (a constant: the calibrated one unless a sweep overrides it)."""
        return float(self.alpha_value) if self._override is None else self._override

    @alpha.setter
    def alpha(self, value: float | None) -> None:
        self._override = None if value is None or value == float(self.alpha_value) else float(value)

    def set_constant_alpha(self, alpha: float | None) -> None:
        """Override alpha (a sweep); ``None`` goes back to the calibrated alpha."""
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self._override = None if alpha is None else float(alpha)

    def train(self, mode: bool = True) -> MixedNUTSClassifier:
        """The base models always stay in eval mode."""
        super().train(mode)
        self.standard.eval()
        self.robust.eval()
        return self

    # ---- forward ---------------------------------------------------------------------------------
    def forward_with_alpha(self, x: Tensor, surrogate: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """``(log_probs, alpha (N,), gamma_logit (N,))``; ``surrogate=True``: the differentiable stand-in."""
        z_g, z_h = self.standard(x), self.robust(x)
        a = self.alpha
        alpha = torch.full((x.shape[0],), a, device=z_g.device, dtype=torch.float32)
        gamma = torch.logit(alpha)
        s, c, p = float(self.s), float(self.c), float(self.p)
        if not self.transform:
            return mix_log_probs(z_g, z_h, a), alpha, gamma
        if surrogate:
            transformed = _transform64(z_h, s, c, p, self.k).to(torch.promote_types(z_h.dtype, torch.float32))
            out = mix_log_probs(z_g, transformed, a, scale_std=1.0 / self.surrogate_temperature)
            return out, alpha, gamma
        return mixednuts_log_probs(z_g, z_h, s, c, p, a, self.k), alpha, gamma

    def forward(self, x: Tensor) -> Tensor:
        """Exact MixedNUTS log-probabilities (N, K)."""
        return self.forward_with_alpha(x)[0]
