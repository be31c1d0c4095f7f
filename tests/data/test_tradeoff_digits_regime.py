"""The trade-off digits deliver the regime they promise at their defaults (docs/tradeoff.md): the degraded strokes
alone support about 85-90 %, the class pattern makes a standard MLP nearly perfect and an eps = 2a attack
breaks it, and adversarial training at eps = 2a costs clearly more than 5 points of clean accuracy.

Plain loops on the MLP backbone of configs/digits_tradeoff (a few seconds); the thresholds leave room
for seed noise on the 270 validation images (one image is 0.37 points).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustlit.attacks.losses import cross_entropy_loss
from robustlit.attacks.pgd import pgd_attack
from robustlit.data import TradeoffDigitsDataModule
from robustlit.models import MLP, Normalize

EPS = 0.1  # = 2 * the default amplitude: the attacker can swap the class pattern


def _fit(data: TradeoffDigitsDataModule, adversarial: bool, epochs: int = 20) -> tuple[torch.nn.Module, float, float]:
    """Adam + cosine schedule as in the configs; returns (model, validation clean acc, PGD-20 acc)."""
    data.setup()
    (x, y), (xv, yv) = data.train_dataset.tensors, data.val_dataset.tensors
    torch.manual_seed(0)
    model = torch.nn.Sequential(Normalize(data.mean, data.std), MLP(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(64):
            inputs = x[batch]
            if adversarial:
                model.eval()
                inputs = pgd_attack(
                    model, inputs, lambda z, t=y[batch]: cross_entropy_loss(z, t), EPS, 2.5 * EPS / 7, 7
                )
                model.train()
            loss = F.cross_entropy(model(inputs), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    attacked = pgd_attack(model, xv, lambda z: cross_entropy_loss(z, yv), EPS, EPS / 8, 20, success=yv)
    with torch.no_grad():
        clean = (model(xv).argmax(1) == yv).float().mean().item()
        robust = (model(attacked).argmax(1) == yv).float().mean().item()
    return model, clean, robust


def test_default_benchmark_has_a_real_robustness_accuracy_gap() -> None:
    _, shape_only, _ = _fit(TradeoffDigitsDataModule(amplitude=0.0), adversarial=False)
    _, standard, standard_robust = _fit(TradeoffDigitsDataModule(), adversarial=False)
    _, robust_clean, robust_robust = _fit(TradeoffDigitsDataModule(), adversarial=True)
    numbers = (
        f"shape only {shape_only:.3f}, standard {standard:.3f} / {standard_robust:.3f}, "
        f"PGD-AT {robust_clean:.3f} / {robust_robust:.3f}"
    )
    assert 0.80 <= shape_only <= 0.93, numbers  # the strokes alone: about 85-90 %
    assert standard >= 0.97, numbers  # the pattern makes a standard model nearly perfect ...
    assert standard_robust <= 0.05, numbers  # ... and an eps = 2a attacker breaks it
    assert standard - robust_clean >= 0.08, numbers  # robustness costs clean accuracy
    assert robust_robust >= 0.3, numbers  # the robust model keeps robustness the attack cannot remove
