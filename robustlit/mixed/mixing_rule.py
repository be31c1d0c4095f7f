"""The mixing rule: a standard and a robust model's predictions mixed in probability space.

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554, and Bai, Zhou, Patel, Sojoudi (2024), MixedNUTS,
TMLR, arXiv 2402.02263; see docs/mixed_classifier.md. A mixture returns *log-probabilities*
(docs/contracts.md), so ``softmax(output)`` is the mixture itself and cross-entropy on the output is
its NLL. Pure torch, no Lightning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["mix_log_probs"]


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
    """Log of the mixed probabilities (docs/mixed_classifier.md).

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
    value instead (as :func:`robustlit.mixed.mixednuts.mixednuts_log_probs` does).
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
