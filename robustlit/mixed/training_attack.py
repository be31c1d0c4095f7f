"""Training-time attack of adaptive smoothing: randomised PGD on the whole mixture, through alpha.

Bai, Anderson, Kim, Sojoudi (2023), arXiv 2301.12554; see docs/mixed_classifier.md for how this
departs from the paper's attack (per-group draws, plain PGD, no targeted DLR attacks). Pure torch,
no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.threat_model import Norm
from robustlit.mixed.adaptive_attack import AlphaExposed, adaptive_mixture_loss

__all__ = ["randomized_mixture_attack"]


def _split_loss(y: Tensor, bce_weight: float | Tensor):  # noqa: ANN202 - a LossFn closure
    def loss_fn(output: Tensor) -> Tensor:
        return adaptive_mixture_loss(output[:, :-1], output[:, -1], y, bce_weight)

    return loss_fn


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
