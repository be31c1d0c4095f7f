"""Mixed standard + robust classifier in probability space, and its mixing-network loss.

Adaptive Smoothing (Bai et al., arXiv 2301.12554) and MixedNUTS (Bai et al., TMLR 2024); see
docs/mixed_classifier.md. A mixture returns *log-probabilities* (docs/contracts.md,
models map inputs to logits), so ``softmax(output)`` is the mixture itself and cross-entropy on the output is its NLL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["mix_log_probs", "mixing_bce_loss", "mixing_network_loss"]


def _alpha_tensor(alpha: float | Tensor, ref: Tensor) -> Tensor:
    """Return alpha as a tensor that broadcasts against (N, K) log-probabilities."""
    if not isinstance(alpha, Tensor):
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        return torch.tensor(alpha, dtype=ref.dtype, device=ref.device)
    a = alpha.to(device=ref.device, dtype=ref.dtype)
    if a.dim() == 0 or (a.dim() == 2 and a.shape[1] == 1):
        return a
    if a.dim() == 1:
        return a.unsqueeze(1)
    raise ValueError(f"alpha must be a float, a 0-d tensor or of shape (N,) or (N, 1); got {tuple(a.shape)}")


def _log_weights(a: Tensor) -> tuple[Tensor, Tensor]:
    """(log(1 - a), log(a)), -inf at the endpoints with finite (zero) gradients there.

    The inner ``where`` keeps the masked entries away from log(0), whose infinite derivative
    would otherwise turn the zero upstream gradient into NaN.
    """
    pos, below_one = a > 0, a < 1
    log_a = torch.where(pos, torch.log(torch.where(pos, a, torch.ones_like(a))), -torch.inf)
    log_1ma = torch.where(below_one, torch.log1p(-torch.where(below_one, a, torch.zeros_like(a))), -torch.inf)
    return log_1ma, log_a


def mix_log_probs(
    logits_std: Tensor,
    logits_rob: Tensor,
    alpha: float | Tensor,
    scale_std: float = 1.0,
    scale_rob: float = 1.0,
) -> Tensor:
    """Log of the mixed probabilities (Bai et al. 2023; docs/mixed_classifier.md).

    ``out = log((1 - alpha) * softmax(scale_std * z_g) + alpha * softmax(scale_rob * z_h))``,
    computed as ``logsumexp(log(1 - alpha) + log_softmax(s_g z_g), log(alpha) + log_softmax(s_h z_h))``.

    Args:
        logits_std: (N, K) logits z_g of the accurate/standard model g.
        logits_rob: (N, K) logits z_h of the robust model h.
        alpha: weight of the robust model; a python float, a 0-d tensor, or an (N,) / (N, 1)
            tensor (one alpha per example). Tensor values are not range-checked (that would
            synchronise the GPU on every forward); they must lie in [0, 1].
        scale_std, scale_rob: logit temperatures s_g, s_h.

    Returns:
        (N, K) log-probabilities (float32 at least: half-precision logits are upcast).

    ``alpha = 0`` returns exactly ``log_softmax(s_g z_g)`` and ``alpha = 1`` exactly
    ``log_softmax(s_h z_h)``, without NaN in values or gradients. At these two endpoints the
    gradient with respect to alpha is that of the surviving branch only (the other branch's
    ``log(alpha)`` / ``log(1 - alpha)`` is a constant -inf there), i.e. -1 at alpha = 0 and +1 at
    alpha = 1; inside (0, 1) it is the exact derivative. Logits equal to -inf in *both* models
    for the same class give a -inf output and a NaN gradient there; use a large finite negative
    value instead (as :func:`robustlit.losses.mixednuts.mixednuts_log_probs` does).
    """
    if logits_std.shape != logits_rob.shape or logits_std.dim() != 2:
        raise ValueError(
            f"logits must both have shape (N, K); got {tuple(logits_std.shape)} and {tuple(logits_rob.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(logits_std.dtype, logits_rob.dtype), torch.float32)
    lp_std = F.log_softmax(scale_std * logits_std.to(dtype), dim=1)
    lp_rob = F.log_softmax(scale_rob * logits_rob.to(dtype), dim=1)
    a = _alpha_tensor(alpha, lp_std)
    log_one_minus, log_alpha = _log_weights(a)
    return torch.logsumexp(torch.stack((log_one_minus + lp_std, log_alpha + lp_rob)), dim=0)


def mixing_bce_loss(gamma_logit: Tensor, is_attacked: Tensor, reduction: str = "mean") -> Tensor:
    """BCE of the mixing logit gamma against the detector label s (Bai et al. 2023; docs/mixed_classifier.md).

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
    """Adaptive-smoothing training objective for the mixing network (Bai et al. 2023; docs/mixed_classifier.md).

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
