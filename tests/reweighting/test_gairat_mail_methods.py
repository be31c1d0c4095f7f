"""GAIRAT and MAIL baselines (docs/reweighting.md) as training modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlit.losses.instance_weights import gairat_weights, mail_weights, probabilistic_margin
from robustlit.losses.trades import trades_kl
from robustlit.methods.instance_reweighted import GAIRAT, MAIL, counting_objective
from robustlit.models import SmallCNN


def batch(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def make(cls: type, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return cls(backbone=SmallCNN(10, 1, width=8, hidden=16), eps=0.2, step_size=0.05, steps=4, **kwargs)


def test_kappa_counts_the_attack_iterations_classified_correctly() -> None:
    y = torch.tensor([0, 1, 2])
    kappa = torch.zeros(3)
    objective = counting_objective(lambda logits: logits.sum(dim=1), y, kappa)
    objective(torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 0, 5.0]]))  # correct, wrong, correct
    objective(torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]]))  # correct, correct, wrong
    assert kappa.tolist() == [2.0, 1.0, 1.0]


@pytest.mark.parametrize(("cls", "kwargs"), [(GAIRAT, {}), (MAIL, {"base_loss": "trades", "beta": 5.0}), (MAIL, {})])
def test_one_optimizer_step_trains_with_mean_one_weights(cls: type, kwargs: dict) -> None:
    module = make(cls, **kwargs)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in module.parameters()]
    x, y = batch()
    loss = module.training_loss(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert module.last_weights.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_gairat_weights_follow_kappa_of_the_training_attack() -> None:
    module = make(GAIRAT, lam=-1.0)
    x, y = batch()
    torch.manual_seed(5)
    adversarial = module.adversarial_batch(x, y)
    assert adversarial.kappa.min() >= 0 and adversarial.kappa.max() <= module.steps
    weights = module.instance_weights(adversarial, y)
    assert torch.allclose(weights, gairat_weights(adversarial.kappa, module.steps, lam=-1.0))
    order = adversarial.kappa.argsort()
    assert (weights[order].diff() <= 1e-6).all()  # fewer surviving steps -> larger weight
    torch.manual_seed(5)
    loss = module.training_loss(x, y)
    assert torch.allclose(loss, (weights * adversarial.robust).mean(), rtol=1e-5)


def test_mail_on_trades_weights_only_the_kl_term() -> None:
    module = make(MAIL, base_loss="trades", beta=5.0)
    x, y = batch()
    torch.manual_seed(5)
    loss = module.training_loss(x, y)
    torch.manual_seed(5)
    x_adv, _ = module.adversarial_examples(x, y)
    logits_clean, logits_adv = module(x), module(x_adv)
    weights = mail_weights(probabilistic_margin(logits_adv, y))
    expected = F.cross_entropy(logits_clean, y) + (weights * 5.0 * trades_kl(logits_clean, logits_adv)).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_weights_are_uniform_before_begin_epoch() -> None:
    module = make(GAIRAT, begin_epoch=3)
    x, y = batch()
    module.training_loss(x, y)  # current_epoch is 0 outside a Trainer
    assert torch.allclose(module.last_weights, torch.full((24,), 1 / 24))


def test_mail_refuses_a_non_positive_slope() -> None:
    with pytest.raises(ValueError, match="slope"):
        MAIL(backbone=SmallCNN(width=8), slope=0.0)
