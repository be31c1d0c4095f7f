"""Models for the audit tests: the gradient-masking kinds of Athalye, Carlini and Wagner (2018), and toys.

Every masked model wraps a normally trained digits classifier, so it keeps (nearly) its clean accuracy
while hiding it from gradient-based attacks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Quantised(nn.Module):
    """Shattered gradients: x -> round(k x) / k before the classifier (round has a zero gradient)."""

    def __init__(self, base: nn.Module, levels: int = 4) -> None:
        super().__init__()
        self.base, self.levels = base, levels

    def forward(self, x: Tensor) -> Tensor:
        return self.base(torch.round(x * self.levels) / self.levels)


class NoisyInput(nn.Module):
    """Stochastic gradients: Gaussian noise on the input at every forward pass, also in eval mode."""

    def __init__(self, base: nn.Module, sigma: float = 0.3) -> None:
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x + self.sigma * torch.randn_like(x))


class ScaledLogits(nn.Module):
    """Vanishing gradients: logits times 1e4, so the float32 cross-entropy saturates to a zero gradient."""

    def __init__(self, base: nn.Module, scale: float = 1e4) -> None:
        super().__init__()
        self.base, self.scale = base, scale

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.base(x)


class SigmoidSquash(nn.Module):
    """Vanishing gradients: a steep sigmoid of the input (saturated to exactly 0 or 1 away from 0.5)."""

    def __init__(self, base: nn.Module, steepness: float = 1000.0) -> None:
        super().__init__()
        self.base, self.steepness = base, steepness

    def forward(self, x: Tensor) -> Tensor:
        return self.base(torch.sigmoid(self.steepness * (x - 0.5)))


class PiecewiseLogits(nn.Module):
    """A 1-D, 3-class toy with logits log g_k(x), g_0 = 1 and g_1, g_2 piecewise linear in x.

    ``knots`` and the values of g_1, g_2 at them define the model; the tests pick them so that the
    cross-entropy of class 0 rises along x while the argmax goes 0 -> 1 -> 0 (silent success), or is
    flat with a misclassified left half of lower loss (restarts raise robust accuracy).
    """

    def __init__(self, knots: list[float], g1: list[float], g2: list[float]) -> None:
        super().__init__()
        self.register_buffer("knots", torch.tensor(knots))
        self.register_buffer("g", torch.tensor([g1, g2]))
        self.anchor = nn.Parameter(torch.zeros(()))  # a parameter, so the model has a device

    def _interp(self, x: Tensor, values: Tensor) -> Tensor:
        idx = torch.searchsorted(self.knots, x.detach().contiguous(), right=True).clamp(1, len(self.knots) - 1)
        left, right = self.knots[idx - 1], self.knots[idx]
        w = (x - left) / (right - left)
        return values[idx - 1] * (1 - w) + values[idx] * w

    def forward(self, x: Tensor) -> Tensor:
        t = x.reshape(x.shape[0])
        g1, g2 = self._interp(t, self.g[0]), self._interp(t, self.g[1])
        zero = torch.zeros_like(t) + self.anchor
        return torch.stack([zero, g1.log(), g2.log()], dim=1)


def silent_success_toy() -> PiecewiseLogits:
    """Class 0 is right for x < 0.31 and x > 0.68, wrong in between; the loss rises all the way to x = 1."""
    return PiecewiseLogits([0.0, 0.4, 0.7, 1.0], [0.05, 1.3, 0.98, 0.98], [0.05, 0.05, 0.98, 0.99])


def restart_toy() -> PiecewiseLogits:
    """Misclassified for x < 0.5 (loss log 2.35), correct above at a higher loss (log 2.96); mostly flat."""
    return PiecewiseLogits([0.0, 0.49, 0.51, 1.0], [1.3, 1.3, 0.98, 0.98], [0.05, 0.05, 0.98, 0.98])


def saturated_tsipras(d: int = 1000, n: int = 200, seed: int = 0) -> tuple[nn.Module, Tensor, Tensor, float]:
    """Tsipras et al.'s (2019) distribution with a linear classifier weighting every weak feature equally.

    Its logit margin is ~ eta * d = 190, so the float32 cross-entropy gradient is exactly 0; at eps =
    2 eta (Linf) its population robust accuracy is 0. Returns (model, x, y, eps).
    """
    from robustlit.data.tsipras import sample_tsipras

    eta = 6 / d**0.5
    x, y = sample_tsipras(n, d, 0.95, eta, torch.Generator().manual_seed(seed))
    model = nn.Linear(d + 1, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 1:] = -0.5
        model.weight[1, 1:] = 0.5
        model.bias.zero_()
    return model, x, y, 2 * eta
