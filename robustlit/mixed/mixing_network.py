"""The mixing network: tapped features of both base models -> per-example mixing weight alpha(x).

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554 (the "adapted adversarial detector" of adaptive
smoothing), in a simplified form described in docs/mixed_classifier.md. Pure torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MixingNetwork"]


class MixingNetwork(nn.Module):
    """Mixing network: tapped features of both base models -> alpha(x) in [0, 1] (Bai et al. 2023).

    A simplified version of the paper's detector. Each input feature (NCHW map, or (N, D) vector
    treated as a 1x1 map) is projected to ``width`` channels by a 1x1 convolution and batch norm,
    average-pooled to the smallest spatial size among the inputs, and the projections are summed.
    Then ``depth`` 3x3 conv + ReLU layers, global average pooling and a linear map (no bias) give a
    raw score per example. Output head, as in the reference implementation:

    - training mode: the raw score is clamped to batch mean +- ``train_clamp_std`` * batch std
      (bounds not differentiated), so the output batch norm sees no outliers. With
      ``clamp_gradient="straight_through"`` (default) the clamp acts on the forward values only and
      passes the gradient of every example through unchanged; ``"zero"`` is the reference code's
      ``torch.clamp``, whose gradient is 0 outside the bounds: the examples scored on the wrong side
      of the batch (attacked inputs whose gamma the training attack pushed down, clean inputs scored
      high) then get no gradient, which stalled training on the trade-off digits
      (docs/mixed_classifier.md);
    - ``BatchNorm1d(1, affine=False, momentum=0.01)``;
    - ``gamma = bn * gamma_scale + gamma_bias`` (``eval_gamma_scale`` / ``eval_gamma_bias`` in eval
      mode when given), ``alpha = sigmoid(gamma)``;
    - compressed alpha ``alpha_min + (alpha_max - alpha_min) * alpha`` when ``compress`` (by default
      in eval mode only).

    Args:
        in_channels: channel count (or feature dimension for (N, D) inputs) of each tapped feature,
            in the order the features are passed to :meth:`forward` (standard model's first).
        width: common projection width.
        depth: number of 3x3 conv + ReLU layers after the sum.
        train_clamp_std: half-width of the training-mode clamp in batch standard deviations (None: no clamp).
        clamp_gradient: ``"straight_through"`` or ``"zero"`` (the reference code's), see above.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int = 64,
        depth: int = 2,
        gamma_scale: float = 2.0,
        gamma_bias: float = 0.4,
        eval_gamma_scale: float | None = None,
        eval_gamma_bias: float | None = None,
        alpha_min: float = 0.0,
        alpha_max: float = 1.0,
        train_clamp_std: float | None = 0.6,
        clamp_gradient: Literal["straight_through", "zero"] = "straight_through",
    ) -> None:
        super().__init__()
        if len(in_channels) == 0:
            raise ValueError("MixingNetwork needs at least one input feature")
        if not 0.0 <= alpha_min <= alpha_max <= 1.0:
            raise ValueError(f"need 0 <= alpha_min <= alpha_max <= 1, got [{alpha_min}, {alpha_max}]")
        self.in_channels = [int(c) for c in in_channels]
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, kernel_size=1, bias=False), nn.BatchNorm2d(width))
            for c in self.in_channels
        )
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, kernel_size=3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.linear = nn.Linear(width, 1, bias=False)
        self.bn = nn.BatchNorm1d(1, affine=False, momentum=0.01)
        if clamp_gradient not in ("straight_through", "zero"):
            raise ValueError(f"clamp_gradient must be 'straight_through' or 'zero'; got {clamp_gradient!r}")
        self.train_clamp_std = train_clamp_std
        self.clamp_gradient = clamp_gradient
        # Buffers so that tuned head settings travel with the state dict.
        self.register_buffer("gamma_scale", torch.tensor(float(gamma_scale)))
        self.register_buffer("gamma_bias", torch.tensor(float(gamma_bias)))
        eval_scale = gamma_scale if eval_gamma_scale is None else eval_gamma_scale
        eval_bias = gamma_bias if eval_gamma_bias is None else eval_gamma_bias
        self.register_buffer("eval_gamma_scale", torch.tensor(float(eval_scale)))
        self.register_buffer("eval_gamma_bias", torch.tensor(float(eval_bias)))
        self.register_buffer("alpha_min", torch.tensor(float(alpha_min)))
        self.register_buffer("alpha_max", torch.tensor(float(alpha_max)))

    def score(self, features: Sequence[Tensor]) -> Tensor:
        """Raw detector score (N,) before the output head."""
        if len(features) != len(self.projections):
            raise ValueError(f"expected {len(self.projections)} features, got {len(features)}")
        maps = []
        for i, (feat, channels) in enumerate(zip(features, self.in_channels, strict=True)):
            if feat.dim() == 2:
                feat = feat[:, :, None, None]
            if feat.dim() != 4 or feat.shape[1] != channels:
                raise ValueError(
                    f"feature {i}: expected (N, {channels}, H, W) or (N, {channels}), got {tuple(feat.shape)}"
                )
            maps.append(feat)
        height = min(m.shape[2] for m in maps)
        width = min(m.shape[3] for m in maps)
        total = 0
        for proj, feat in zip(self.projections, maps, strict=True):
            if feat.shape[2:] != (height, width):
                feat = F.adaptive_avg_pool2d(feat, (height, width))
            total = total + proj(feat)
        hidden = self.body(total).mean(dim=(2, 3))
        return self.linear(hidden).squeeze(1)

    def forward(
        self, features: Sequence[Tensor], compress: bool | None = None, head: str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(alpha, gamma_logit)``, both (N,).

        ``gamma_logit`` is the logit fed to the BCE detector loss; ``alpha = sigmoid(gamma_logit)``
        unless compressed to [alpha_min, alpha_max] (``compress=None`` means: iff in eval mode).
        ``head`` (``"train"`` / ``"eval"``) picks the output head's scale and bias regardless of the
        mode (None: the mode's own); the batch norm always follows the mode. Training-time attacks use
        the training head with the running statistics, as Bai et al. (2023) attack with the training head.
        """
        if head not in (None, "train", "eval"):
            raise ValueError(f"MixingNetwork head must be None, 'train' or 'eval'; got {head!r}")
        raw = self.score(features)
        if self.training and self.train_clamp_std is not None and raw.shape[0] > 1:
            with torch.no_grad():
                mean, std = raw.mean(), raw.std()
            clamped = torch.clamp(raw, mean - self.train_clamp_std * std, mean + self.train_clamp_std * std)
            # straight-through: clamped values forward, the identity's gradient backward
            straight = getattr(self, "clamp_gradient", "zero") == "straight_through"
            raw = raw + (clamped - raw).detach() if straight else clamped
        normed = self.bn(raw.unsqueeze(1)).squeeze(1)
        if head == "train" or (head is None and self.training):
            gamma_logit = normed * self.gamma_scale + self.gamma_bias
        else:
            gamma_logit = normed * self.eval_gamma_scale + self.eval_gamma_bias
        alpha = torch.sigmoid(gamma_logit)
        if compress if compress is not None else not self.training:
            alpha = self.alpha_min + (self.alpha_max - self.alpha_min) * alpha
        return alpha, gamma_logit
