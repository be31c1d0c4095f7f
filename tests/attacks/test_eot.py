"""Expectation over transformation: the input gradient is averaged over eot_samples forward passes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.attacks import AttackSpec, pgd_attack

D = 20


class NoisyLinear(nn.Module):
    """Binary logits [0, (w + 5 n)·x] with fresh n ~ N(0, I) at every call: a stochastic gradient around w."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: Tensor) -> Tensor:
        score = x @ (self.w + 5 * torch.randn(D))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def _one_step(model: nn.Module, x: Tensor, eot_samples: int) -> Tensor:
    return pgd_attack(
        model, x, lambda z: z[:, 1], eps=0.1, step_size=0.1, steps=1,
        random_start_kind="none", bounds=None, eot_samples=eot_samples,
    )  # fmt: skip


def test_averaged_gradient_recovers_the_expected_direction() -> None:
    torch.manual_seed(0)
    w = torch.where(torch.arange(D) % 2 == 0, 1.0, -1.0)
    model = NoisyLinear(w)
    x = torch.zeros(8, D)
    averaged = _one_step(model, x, eot_samples=400)
    single = _one_step(model, x, eot_samples=1)
    assert torch.equal(averaged.sign(), w.sign().expand(8, D))  # E[grad] = w
    assert (single.sign() != w.sign()).any()  # one noisy draw points elsewhere


def test_eot_in_metric_name() -> None:
    assert AttackSpec(name="native_pgd", eps=0.1, eot_samples=8).metric_name.endswith("_eot8_linf_0.1")
