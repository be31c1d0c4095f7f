"""The synthetic distribution of Tsipras et al. (2019), "Robustness May Be at Odds with Accuracy", §2.

y ~ U{-1, +1};  x_1 = y w.p. p else -y;  x_2..x_{d+1} ~ N(eta*y, 1).  Labels are stored as classes
{0, 1} (class 1 <=> y = +1). Inputs are unbounded feature vectors (no [0, 1] box), so attacks on
this data use ``native_pgd``. See ``docs/tradeoff.md`` for the closed-form accuracies.
"""

from __future__ import annotations

import math

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import TensorDataset

from robustlit.data.base import RobustDataModule
from robustlit.utils.config_types import ProbabilityAtLeastHalf


def sample_tsipras(n: int, d: int, p: float, eta: float, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Draw ``n`` points (x of shape (n, d + 1), class labels in {0, 1})."""
    y_sign = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
    flip = torch.rand(n, generator=generator) >= p
    x1 = torch.where(flip, -y_sign, y_sign).float()
    gauss = torch.randn(n, d, generator=generator) + eta * y_sign.float().unsqueeze(1)
    x = torch.cat([x1.unsqueeze(1), gauss], dim=1)
    return x, ((y_sign + 1) // 2).long()


class TsiprasDataModule(RobustDataModule):
    """Train/val/test sets from the Tsipras distribution, seeded by ``data_seed``.

    Args:
        d: number of weakly correlated Gaussian features.
        p: probability that the robust feature x_1 equals y (in [0.5, 1)).
        eta: mean shift of the Gaussian features; ``None`` = 6 / sqrt(d).
    """

    num_classes = 2
    bounds = None

    def __init__(
        self,
        d: PositiveInt = 1000,
        p: ProbabilityAtLeastHalf = 0.95,
        eta: float | None = None,
        n_train: PositiveInt = 10000,
        n_val: PositiveInt = 2000,
        n_test: PositiveInt = 10000,
        batch_size: PositiveInt = 256,
        eval_batch_size: PositiveInt | None = 1000,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        data_seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed)
        if not 0.5 <= p < 1:
            raise ValueError(f"p must lie in [0.5, 1); got {p}")
        self.d, self.p = d, p
        self.eta = 6 / math.sqrt(d) if eta is None else eta
        if self.eta <= 0:
            raise ValueError(f"eta must be > 0; got {self.eta}")
        self.sizes = (n_train, n_val, n_test)
        self.data_seed = data_seed

    @property
    def adversarial_eps(self) -> float:
        """The Linf radius 2*eta at which Theorem 2.1 applies."""
        return 2 * self.eta

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        generator = torch.Generator().manual_seed(self.data_seed)
        splits = [TensorDataset(*sample_tsipras(n, self.d, self.p, self.eta, generator)) for n in self.sizes]
        self.train_dataset, self.val_dataset, self.test_dataset = splits


def linear_population_accuracy(weight: torch.Tensor, bias: float, p: float, eta: float, eps: float = 0.0) -> float:
    """Exact accuracy of sign(w·x + b) on the Tsipras distribution under the worst Linf attack of size eps.

    For a linear score the worst case lowers the signed margin by eps·‖w‖₁ (all coordinates, x_1
    included), and w_G·G ~ N(±eta·Σw_G, ‖w_G‖²), so (class +1 / class -1, x_1 = ±y):

        P(correct) = ½ Σ_{y=±1} [ p·Φ((w_1 + eta·Σw_G + y·b − c)/‖w_G‖) + (1−p)·Φ((−w_1 + eta·Σw_G + y·b − c)/‖w_G‖) ]

    with c = eps·‖w‖₁. ``weight`` is the (d + 1)-vector of the class-1-minus-class-0 score.
    """
    w = weight.double()
    w1, wg = w[0].item(), w[1:]
    scale = wg.norm().item()
    shift = eta * wg.sum().item()
    c = eps * w.abs().sum().item()
    normal = torch.distributions.Normal(0.0, 1.0)

    def phi(v: float) -> float:
        return float(normal.cdf(torch.tensor(v / scale))) if scale > 0 else float(v > 0)

    total = 0.0
    for y in (1.0, -1.0):
        total += p * phi(w1 + shift + y * bias - c) + (1 - p) * phi(-w1 + shift + y * bias - c)
    return total / 2


def theorem_2_1_bound(clean_accuracy: float, p: float) -> float:
    """Tsipras et al. Thm 2.1: robust accuracy at eps >= 2·eta is at most p/(1−p) · (1 − clean accuracy)."""
    return p / (1 - p) * (1 - clean_accuracy)
