"""The trade-off digits deliver the regime they promise at their defaults (docs/tradeoff.md), on the validation
split: a standard MLP at least 5 points more accurate than a PGD-AT one, the PGD-AT one at least 20 % under
standard AutoAttack, and the confidence property a mixed classifier needs (docs/mixed_classifier.md): separation
AUC >= 0.8 and a constant alpha, predicted from the worst-case margins, that recovers >= 60 % of the clean gap for
<= 2 points of robustness. The first version's setting stays reachable by arguments, bit for bit.

Plain loops on the MLP backbone of configs/digits_tradeoff (Adam 2e-3, cosine, batch 64, 20 epochs, PGD-7 at
eps 0.1), then the confidence report and AutoAttack: about half a minute on one thread.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from robustlit.attacks.losses import cross_entropy_loss
from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.data import TradeoffDigitsDataModule
from robustlit.mixed.confidence import confidence_report
from robustlit.models import MLP, Normalize

EPS = 0.1  # = 2 * the default amplitude: the attacker can swap the class pattern
#: sha256 of the images and labels of the three splits of TradeoffDigitsDataModule(downsample=2, contrast=(1, 1)),
#: the defaults of the first version of the benchmark (computed with that version's code)
FIRST_VERSION_SHA256 = "66626702439694bd8293f16528f3dae069b56cac9ad2453df38300067bdc5bdd"


def _fit(data: TradeoffDigitsDataModule, adversarial: bool, epochs: int = 20) -> torch.nn.Module:
    """Adam + cosine schedule as in configs/digits_tradeoff; PGD-AT with 7 steps of 0.025 at eps 0.1."""
    data.setup()
    x, y = data.train_dataset.tensors
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
    return model.eval()


def test_default_benchmark_has_the_gap_and_the_confidence_property_on_the_validation_split() -> None:
    data = TradeoffDigitsDataModule()
    standard, robust = _fit(data, adversarial=False), _fit(data, adversarial=True)
    xv, yv = data.val_dataset.tensors
    report = confidence_report(robust, xv, yv, EPS, standard=standard)
    torch.manual_seed(0)
    x_aa = build_attack(AttackSpec("autoattack", "Linf", EPS), robust, 10, (0.0, 1.0), 270)(xv, yv)
    with torch.no_grad():
        autoattack = (robust(x_aa).argmax(1) == yv).float().mean().item()
    best = report["recommended"]
    numbers = (
        f"g clean {report['standard_clean_acc']:.3f}, h clean {report['clean_acc']:.3f}, h AutoAttack {autoattack:.3f}"
        f", h APGD-CE/T {report['robust_acc']:.3f}, AUC {report['auc']:.3f}, alpha {best['alpha']}: clean "
        f"{best['clean_acc']:.3f} robust {best['robust_acc']:.3f}, gap recovered {best['gap_recovered']:.2f}"
    )
    assert report["clean_gap"] >= 0.05, numbers  # g at least 5 points more accurate than h
    assert autoattack >= 0.20, numbers  # h keeps robustness that AutoAttack cannot remove
    assert report["robust_acc"] >= autoattack, numbers  # AutoAttack is at least as strong as its APGD part
    assert report["auc"] >= 0.8, numbers  # the confidence property
    assert best["robustness_cost"] <= 0.02 + 1e-9 and best["gap_recovered"] >= 0.6, numbers


def test_the_first_version_of_the_benchmark_is_reachable_by_arguments_bit_for_bit() -> None:
    data = TradeoffDigitsDataModule(downsample=2, contrast=(1.0, 1.0))
    data.setup()
    digest = hashlib.sha256()
    for split in (data.train_dataset, data.val_dataset, data.test_dataset):
        for tensor in split.tensors:
            digest.update(tensor.numpy().tobytes())
    assert digest.hexdigest() == FIRST_VERSION_SHA256
