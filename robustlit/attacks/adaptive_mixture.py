"""Attacks on a mixed classifier that differentiate through alpha (Bai et al. 2023; docs/mixed_classifier.md).

A mixed classifier (``robustlit.models.mixture.MixedClassifier``) exposes
``forward_with_alpha(x) -> (log_probs, alpha, gamma_logit)``. The adaptive attack of Bai et al.
maximises ``(1 - w) * CE(out, y) + w * BCE(gamma, 1)``: the second term pushes the mixing logit
gamma down, i.e. makes the mixing network trust the (non-robust) standard model. Both attacks
here run robustlit's :func:`~robustlit.attacks.pgd.pgd_attack` (under ``attack_mode``) on a thin
wrapper whose output carries gamma next to the log-probabilities, so every gradient flows through
alpha and through the tapped features of both base models.

- :func:`adaptive_pgd_attack`: the evaluation attack, fixed w ("adaptive PGD").
- :func:`randomized_mixture_attack`: the training-time attack of the adaptive-smoothing recipe,
  with eps scale, iteration count and w drawn at random per group of examples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.threat_model import Norm

__all__ = ["AlphaExposed", "adaptive_mixture_loss", "adaptive_pgd_attack", "randomized_mixture_attack"]

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
                "adaptive attacks need a mixed classifier (robustlit.models.mixture.MixedClassifier)"
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


def _split_loss(y: Tensor, bce_weight: float | Tensor):  # noqa: ANN202 - a LossFn closure
    def loss_fn(output: Tensor) -> Tensor:
        return adaptive_mixture_loss(output[:, :-1], output[:, -1], y, bce_weight)

    return loss_fn


def adaptive_pgd_attack(
    mixture: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "Linf",
    bce_weight: float = 0.5,
    random_start: bool = True,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    restarts: int = 1,
) -> Tensor:
    """Adaptive PGD on the whole mixture: maximise ``(1 - w) CE + w BCE(gamma, 1)`` over B_eps(x).

    With ``bce_weight = 0`` this is plain end-to-end PGD on the mixture's cross-entropy. Runs under
    ``attack_mode`` (eval mode everywhere, no parameter gradients). Returns detached x_adv.
    """
    if not 0.0 <= bce_weight <= 1.0:
        raise ValueError(f"bce_weight must lie in [0, 1], got {bce_weight}")
    return pgd_attack(
        AlphaExposed(mixture),
        x,
        _split_loss(y, bce_weight),
        eps=eps,
        step_size=step_size,
        steps=steps,
        norm=norm,
        random_start_kind="uniform" if random_start else "none",
        bounds=bounds,
        restarts=restarts,
    )


def randomized_mixture_attack(
    mixture: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: Norm = "Linf",
    eps_scale: tuple[float, float] = (0.4, 1.1),
    steps: tuple[int, int] = (1, 10),
    bce_weight: tuple[float, float] = (0.0, 0.4),
    step_factor: float = 2.5,
    groups: int = 4,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Training-time attack of adaptive smoothing (Bai et al. 2023): randomised PGD on the whole mixture.

    The batch is cut into ``groups`` contiguous groups; each draws its own eps ``~ eps * U(eps_scale)``,
    iteration count ``~ U{steps[0], ..., steps[1]}``, step size ``step_factor * eps / iterations`` and
    BCE weight ``w ~ U(bce_weight)``, then runs PGD (uniform random start) on
    ``(1 - w) CE + w BCE(gamma, 1)``. The paper draws these per example with ~chi2(75) iterations
    and APGD with momentum plus 9 targeted DLR attacks; per-group draws with a few PGD iterations keep
    it cheap on CPU while still covering weak and strong attacks. Draws use ``generator`` (CPU) if
    given. Returns detached x_adv, shape of x.
    """
    lo_s, hi_s = eps_scale
    lo_k, hi_k = steps
    lo_w, hi_w = bce_weight
    if not (0 < lo_s <= hi_s and 1 <= lo_k <= hi_k and 0 <= lo_w <= hi_w <= 1 and groups >= 1):
        raise ValueError(
            "randomized_mixture_attack needs 0 < eps_scale[0] <= eps_scale[1], 1 <= steps[0] <= steps[1], "
            f"0 <= bce_weight[0] <= bce_weight[1] <= 1 and groups >= 1; got eps_scale={eps_scale}, "
            f"steps={steps}, bce_weight={bce_weight}, groups={groups}"
        )
    chunks = torch.arange(x.shape[0]).tensor_split(min(groups, x.shape[0]))
    out = torch.empty_like(x)
    for index in chunks:
        u = torch.rand(2, generator=generator)
        eps_g = eps * (lo_s + (hi_s - lo_s) * u[0].item())
        steps_g = int(torch.randint(lo_k, hi_k + 1, (1,), generator=generator).item())
        w_g = lo_w + (hi_w - lo_w) * u[1].item()
        index = index.to(x.device)
        out[index] = pgd_attack(
            AlphaExposed(mixture),
            x[index],
            _split_loss(y[index], w_g),
            eps=eps_g,
            step_size=step_factor * eps_g / steps_g,
            steps=steps_g,
            norm=norm,
            random_start_kind="uniform",
            bounds=bounds,
        )
    return out.detach()
