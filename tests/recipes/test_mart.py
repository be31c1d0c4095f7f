"""MART (Wang et al. 2020): the loss equals the paper's equation on a hand-computed batch; the method uses it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robustlit.losses.mart import boosted_cross_entropy, mart_loss, mart_terms
from robustlit.methods import MART

# two examples, three classes; logits = log(probabilities) so softmax gives the probabilities back
CLEAN = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
ADV = torch.tensor([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5]])
Y = torch.tensor([0, 2])
BETA = 6.0

# by hand, per example: BCE = -ln p_y(x') - ln(1 - max_{k!=y} p_k(x')), KL = sum_k p_k(x) ln(p_k(x) / p_k(x')),
# loss = BCE + beta * KL * (1 - p_y(x))
BCE_BY_HAND = [
    math.log(10.0),  # -ln 0.2 - ln(1 - 0.5)
    math.log(8.0 / 3.0),  # -ln 0.5 - ln(1 - 0.25)
]
KL_BY_HAND = [
    0.6 * math.log(0.6 / 0.2) + 0.3 * math.log(0.3 / 0.5) + 0.1 * math.log(0.1 / 0.3),
    0.1 * math.log(0.1 / 0.25) + 0.2 * math.log(0.2 / 0.25) + 0.7 * math.log(0.7 / 0.5),
]
MISCLASSIFICATION_WEIGHT = [1 - 0.6, 1 - 0.7]


def test_mart_loss_equals_the_paper_equation_on_a_hand_computed_batch() -> None:
    expected = torch.tensor(
        [b + BETA * k * w for b, k, w in zip(BCE_BY_HAND, KL_BY_HAND, MISCLASSIFICATION_WEIGHT, strict=True)]
    )
    bce, regulariser = mart_terms(CLEAN.log(), ADV.log(), Y, BETA)
    assert torch.allclose(bce, torch.tensor(BCE_BY_HAND), atol=1e-6)
    assert torch.allclose(
        regulariser, BETA * torch.tensor(KL_BY_HAND) * torch.tensor(MISCLASSIFICATION_WEIGHT), atol=1e-6
    )
    assert torch.allclose(mart_loss(CLEAN.log(), ADV.log(), Y, BETA), expected, atol=1e-6)


def test_gradients_equal_those_of_the_equation_written_with_probabilities() -> None:
    """Nothing is detached: the margin term and the weight 1 - p_y(x) carry gradient, as in the authors' code."""
    clean = torch.randn(6, 5, requires_grad=True)
    adv = torch.randn(6, 5, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    mart_loss(clean, adv, y, BETA).sum().backward()
    grads = clean.grad.clone(), adv.grad.clone()

    clean2, adv2 = clean.detach().clone().requires_grad_(), adv.detach().clone().requires_grad_()
    p, q = clean2.softmax(1), adv2.softmax(1)
    other = q.scatter(1, y[:, None], -1.0).max(1).values
    bce = -q.gather(1, y[:, None]).squeeze(1).log() - (1 - other).log()
    kl = (p * (p.log() - q.log())).sum(1)
    (bce + BETA * kl * (1 - p.gather(1, y[:, None]).squeeze(1))).sum().backward()
    assert torch.allclose(grads[0], clean2.grad, atol=1e-5)
    assert torch.allclose(grads[1], adv2.grad, atol=1e-5)
    assert clean2.grad.abs().sum() > 0


def test_boosted_cross_entropy_is_finite_for_a_saturated_wrong_class() -> None:
    logits = torch.tensor([[0.0, 200.0, -5.0]])  # p_1 = 1 in float32: log(1 - p_1) computed from logits
    value = boosted_cross_entropy(logits, torch.tensor([0]))
    assert torch.isfinite(value).all() and value.item() > 200.0


def test_mart_trains_on_its_terms_with_pgd_on_the_cross_entropy() -> None:
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    module = MART(backbone=backbone, num_classes=3, beta=BETA, eps=0.1, step_size=0.05, steps=3, random_start="none")
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    x_adv = module.adversarial_examples(x, y)
    assert (F.cross_entropy(module(x_adv), y) > F.cross_entropy(module(x), y)).item()
    expected = mart_loss(module(x), module(x_adv), y, BETA).mean()
    assert torch.allclose(module.training_loss(x, y), expected, atol=1e-6)
    assert module.threat_model.random_start == "none"
    assert MART(backbone=nn.Linear(2, 2), num_classes=2).threat_model.random_start == "gaussian"
