"""Training-time attack of adaptive smoothing: per-example randomised APGD on the whole mixture, through alpha.

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554: the mixing network is trained on several attacked
copies of each clean image, each copy attacked with its own randomly drawn radius, iteration count, loss
(untargeted CE or targeted DLR) and weight of the alpha-pushing BCE term, by APGD with momentum
(:func:`robustlit.mixed.apgd.mixture_apgd`). docs/mixed_classifier.md lists what still departs from the
paper (iteration-count distribution, batch-norm statistics during the attack). Pure torch, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.threat_model import Norm
from robustlit.mixed.apgd import mixture_apgd

__all__ = ["randomized_mixture_attack"]


def randomized_mixture_attack(
    mixture: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: Norm = "Linf",
    eps_scale: tuple[float, float] = (0.4, 1.1),
    steps: tuple[int, int] = (1, 10),
    bce_weight: tuple[float, float] = (0.0, 0.4),
    targeted_fraction: float = 0.9,
    copies: int = 1,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """``copies`` attacked copies of the batch (shape ``(copies * N, ...)``, copy-major; labels ``y.repeat(copies)``).

    Per attacked example: eps ``~ eps * U(eps_scale)``, iterations ``~ U{steps[0], ..., steps[1]}``, BCE
    weight ``w ~ U(bce_weight)``, targeted DLR with probability ``targeted_fraction`` (target: a uniformly
    drawn rank 1..K-1 of the clean prediction; Bai et al. attack with 9 targeted DLR and 1 untargeted CE
    attack, i.e. 0.9) else CE; then APGD with momentum on ``(1 - w) L + w BCE(gamma, 1)``, returning the
    highest-loss iterate. Draws use ``generator`` (CPU) if given. Returns detached x_adv.
    """
    lo_s, hi_s = eps_scale
    lo_k, hi_k = steps
    lo_w, hi_w = bce_weight
    if not (0 < lo_s <= hi_s and 1 <= lo_k <= hi_k and 0 <= lo_w <= hi_w <= 1 and copies >= 1):
        raise ValueError(
            "randomized_mixture_attack needs 0 < eps_scale[0] <= eps_scale[1], 1 <= steps[0] <= steps[1], "
            f"0 <= bce_weight[0] <= bce_weight[1] <= 1 and copies >= 1; got eps_scale={eps_scale}, "
            f"steps={steps}, bce_weight={bce_weight}, copies={copies}"
        )
    if not 0.0 <= targeted_fraction <= 1.0:
        raise ValueError(f"targeted_fraction must lie in [0, 1]; got {targeted_fraction}")
    n = x.shape[0] * copies
    u = torch.rand(3, n, generator=generator)
    draws = {
        "eps": (eps * (lo_s + (hi_s - lo_s) * u[0])).to(x.device),
        "steps": torch.randint(lo_k, hi_k + 1, (n,), generator=generator).to(x.device),
        "bce_weight": (lo_w + (hi_w - lo_w) * u[1]).to(x.device),
        "targeted": (u[2] < targeted_fraction).to(x.device),
    }
    with attack_mode(mixture), torch.no_grad():
        num_classes = mixture(x[:2]).shape[1]
    rank = torch.randint(1, max(num_classes, 2), (n,), generator=generator).to(x.device)
    x_rep = x.repeat(copies, *([1] * (x.dim() - 1)))
    return mixture_apgd(
        mixture,
        x_rep,
        y.repeat(copies),
        eps=draws["eps"],
        steps=draws["steps"],
        norm=norm,
        bce_weight=draws["bce_weight"],
        targeted=draws["targeted"],
        target_rank=rank,
        bounds=bounds,
        evaluation=False,
    )
