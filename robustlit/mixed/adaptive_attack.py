"""Adaptive attack on a mixed classifier: PGD through alpha that keeps every success.

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554 (adaptive evaluation of adaptive smoothing); see
docs/mixed_classifier.md. A mixed classifier (:class:`robustlit.mixed.classifier.MixedClassifier`)
exposes ``forward_with_alpha(x) -> (log_probs, alpha, gamma_logit)``. The adaptive attack maximises
``(1 - w) * CE(out, y) + w * BCE(gamma, 1)``: the second term pushes the mixing logit gamma down, i.e.
makes the mixing network trust the (non-robust) standard model. Every gradient flows through alpha
and through the tapped features of both base models.

:func:`adaptive_pgd_attack` is robustlit's projected-gradient engine (:func:`robustlit.attacks.pgd.pgd_attack`)
on :class:`AlphaExposed` with the keep-every-success rule (:class:`robustlit.attacks.keep.KeepEverySuccess`)
preferring, among misclassifying iterates, the one with the highest loss: an example comes back correctly
classified only if every iterate of every restart failed, so more steps or restarts can never raise the
robust accuracy it reports (docs/evaluation.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds, Norm, RandomStart
from robustlit.attacks.keep import KeepEverySuccess
from robustlit.attacks.pgd import pgd_attack

__all__ = ["GAMMA_CLAMP", "AlphaExposed", "adaptive_mixture_loss", "adaptive_pgd_attack"]

#: gamma is clamped to this range inside the BCE term: a constant alpha of 0 or 1 has gamma = -inf / +inf
#: (no gradient to follow anyway) and would otherwise make the loss infinite.
GAMMA_CLAMP = 50.0


class AlphaExposed(nn.Module):
    """Wraps a mixture: ``forward(x) = cat(log_probs, gamma_logit[:, None])``, shape (N, K + 1).

    Lets a generic attack loop (which sees one output tensor) use gamma in its loss.
    """

    def __init__(self, mixture: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(mixture, "forward_with_alpha", None)):
            raise TypeError(
                f"{type(mixture).__name__} has no forward_with_alpha(x) -> (log_probs, alpha, gamma_logit); "
                "adaptive attacks need a mixed classifier (robustlit.mixed.MixedClassifier)"
            )
        self.mixture = mixture

    def forward(self, x: Tensor) -> Tensor:
        log_probs, _, gamma_logit = self.mixture.forward_with_alpha(x)
        return torch.cat([log_probs, gamma_logit.to(log_probs.dtype).unsqueeze(1)], dim=1)


def adaptive_mixture_loss(log_probs: Tensor, gamma_logit: Tensor, y: Tensor, bce_weight: float | Tensor) -> Tensor:
    """Per-example attack objective ``(1 - w) * CE(out, y) + w * BCE(gamma, 1)`` (N,), to maximise.

    ``log_probs`` are the mixture's log-probabilities (so CE is the mixture's NLL); ``bce_weight`` w is
    a float or an (N,) tensor in [0, 1].
    """
    w = torch.as_tensor(bce_weight, dtype=log_probs.dtype, device=log_probs.device)
    if bool(((w < 0) | (w > 1)).any()):
        raise ValueError(f"bce_weight must lie in [0, 1], got {bce_weight}")
    ce = F.cross_entropy(log_probs, y, reduction="none")
    gamma = gamma_logit.clamp(-GAMMA_CLAMP, GAMMA_CLAMP)
    bce = F.binary_cross_entropy_with_logits(gamma, torch.ones_like(gamma), reduction="none")
    return (1 - w) * ce + w * bce


def adaptive_pgd_attack(
    mixture: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "Linf",
    bce_weight: float = 0.5,
    random_start: RandomStart = "uniform",
    bounds: Bounds = (0.0, 1.0),
    restarts: int = 1,
) -> Tensor:
    """Adaptive PGD on the whole mixture: maximise ``(1 - w) CE + w BCE(gamma, 1)`` over B_eps(x).

    With ``bce_weight = 0`` this is plain end-to-end PGD on the mixture's cross-entropy. Runs under
    ``attack_mode`` (eval mode everywhere, no parameter gradients). Every iterate of every restart
    (the random start and the last point included) is classified with the forward that gives its gradient; per
    example the result is the misclassifying iterate with the highest loss if there is one, else the
    iterate with the highest loss. Hence robust accuracy never rises with ``steps`` or ``restarts``
    (for a fixed seed the shorter run's iterates are a prefix of the longer one's). Returns detached
    x_adv.
    """
    if not 0.0 <= bce_weight <= 1.0:
        raise ValueError(f"bce_weight must lie in [0, 1], got {bce_weight}")
    y = y.detach()

    def loss(output: Tensor) -> Tensor:
        return adaptive_mixture_loss(output[:, :-1], output[:, -1], y, bce_weight)

    def misclassified(output: Tensor) -> Tensor:
        return output[:, :-1].argmax(dim=1) != y

    keep = KeepEverySuccess(misclassified, highest_loss_success=True)
    model = AlphaExposed(mixture)
    return pgd_attack(model, x, loss, eps, step_size, steps, norm, random_start, bounds, restarts, keep=keep)
