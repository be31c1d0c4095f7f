"""Training objective of the mixing network (adaptive smoothing).

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554; see docs/mixed_classifier.md. Pure torch, no
Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["mixing_bce_loss", "mixing_network_loss"]


def mixing_bce_loss(gamma_logit: Tensor, is_attacked: Tensor, reduction: str = "mean") -> Tensor:
    """BCE of the mixing logit gamma against the detector label s (docs/mixed_classifier.md).

    s = 1 for attacked inputs ("trust the robust model h", large alpha), s = 0 for clean ones
    ("trust the standard model g"). ``gamma_logit`` is the (N,) logit whose sigmoid is alpha
    before any eval-time compression (second output of ``MixingNetwork.forward``).
    ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (per example, shape (N,)).
    """
    target = is_attacked.to(device=gamma_logit.device, dtype=gamma_logit.dtype)
    return F.binary_cross_entropy_with_logits(gamma_logit, target, reduction=reduction)


def mixing_network_loss(
    log_probs: Tensor,
    y: Tensor,
    gamma_logit: Tensor,
    is_attacked: Tensor,
    c_bce: float = 1.0,
    c_ce: float = 0.5,
    c_prod: float = 0.1,
    clean_scale: float = 2.0,
    adv_scale: float = 1.0,
) -> Tensor:
    """Adaptive-smoothing training objective for the mixing network (docs/mixed_classifier.md).

    Per example: ``c_bce * BCE(gamma, s) + c_ce * CE(out, y) + c_prod * BCE * CE``, multiplied by
    ``adv_scale`` for attacked examples (s = 1) and ``clean_scale`` for clean ones (s = 0), then
    averaged over the batch. Defaults are those of the CIFAR-10 ResNet-18 pair
    (``cifar10_at_apgd.yaml``); the large-model configs use e.g. (1.5, 0, 0.3) with scales (1, 1).

    Args:
        log_probs: (N, K) mixture log-probabilities (output of the mixed classifier).
        y: (N,) integer labels.
        gamma_logit: (N,) mixing logits (finite: a constant alpha of 0 or 1 has gamma = -inf / +inf
            and is not something this loss trains).
        is_attacked: (N,) bool or {0, 1} tensor, the detector label s.
    """
    ce = F.cross_entropy(log_probs, y, reduction="none")
    bce = mixing_bce_loss(gamma_logit, is_attacked, reduction="none")
    per_example = c_bce * bce + c_ce * ce + c_prod * bce * ce
    attacked = is_attacked.to(device=per_example.device).bool()
    scale = torch.where(
        attacked,
        torch.as_tensor(adv_scale, dtype=per_example.dtype, device=per_example.device),
        torch.as_tensor(clean_scale, dtype=per_example.dtype, device=per_example.device),
    )
    return (scale * per_example).mean()
