"""Tsipras et al. (2019): standard vs adversarial training on their synthetic distribution (docs/tradeoff.md)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation
from robustlit.data import TsiprasDataModule, linear_population_accuracy, sample_tsipras, theorem_2_1_bound
from robustlit.methods import PGDAT, Standard
from robustlit.models import LinearClassifier

D, P = 1000, 0.95
ETA = 6 / math.sqrt(D)
EPS = 2 * ETA


def test_population_formula_matches_sampling_for_simple_classifiers() -> None:
    x, y = sample_tsipras(100_000, D, P, ETA, torch.Generator().manual_seed(0))
    sign_y = y.float() * 2 - 1
    averaging = torch.cat([torch.zeros(1), torch.ones(D) / D])
    robust_feature = torch.cat([torch.ones(1), torch.zeros(D)])
    for w, expected_clean, expected_robust in (
        (averaging, 0.5 * (1 + math.erf(ETA * math.sqrt(D) / math.sqrt(2))), None),
        (robust_feature, P, P),
    ):
        empirical = ((x @ w) * sign_y > 0).float().mean().item()
        assert linear_population_accuracy(w, 0.0, P, ETA) == pytest.approx(empirical, abs=0.005)
        assert linear_population_accuracy(w, 0.0, P, ETA) == pytest.approx(expected_clean, abs=1e-3)
        robust = linear_population_accuracy(w, 0.0, P, ETA, eps=EPS)
        if expected_robust is not None:
            assert robust == pytest.approx(expected_robust, abs=1e-6)
        else:  # the averaging classifier: Phi(-eta sqrt(d))
            assert robust < 0.01


def _train(method: type, root: Path, **kwargs: float) -> tuple[pl.LightningModule, TsiprasDataModule, dict]:
    pl.seed_everything(0)
    data = TsiprasDataModule(d=D, p=P, n_train=5000, n_val=500, n_test=5000, batch_size=250)
    module = method(
        backbone=LinearClassifier(D + 1, 2),
        num_classes=2,
        bounds=None,
        optimizer=lambda params: torch.optim.Adam(params, lr=0.01),
        **kwargs,
    )
    evaluation = AdversarialEvaluation(
        [AttackSpec(name="native_pgd", eps=EPS, steps=1, step_size=EPS, random_start=False)],
        num_examples=None,
        batch_size=5000,
        stages=["test"],
        print_table=False,
    )
    trainer = pl.Trainer(
        max_epochs=8,
        accelerator="cpu",
        logger=False,
        default_root_dir=root,  # the evaluation's JSON and figures go to the run folder: a temporary one
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[evaluation],
    )
    trainer.fit(module, data)
    trainer.test(module, data, verbose=False)
    return module, data, evaluation.results["test"]


def _population(module: pl.LightningModule) -> tuple[float, float]:
    linear = module.backbone.linear
    w = (linear.weight[1] - linear.weight[0]).detach()
    b = (linear.bias[1] - linear.bias[0]).item()
    return linear_population_accuracy(w, b, P, ETA), linear_population_accuracy(w, b, P, ETA, eps=EPS)


def test_standard_training_is_accurate_but_not_robust(tmp_path: Path) -> None:
    module, _, result = _train(Standard, tmp_path)
    clean, robust = _population(module)
    assert clean >= 0.99 and robust <= 0.02, (clean, robust)
    assert result["clean_acc"] >= 0.99
    assert result["attacks"]["native_pgd1_step0.3795_norandstart_margin_linf_0.3795"]["robust_acc"] <= 0.02
    assert robust <= theorem_2_1_bound(clean, P) + 1e-12


def test_adversarial_training_trades_accuracy_for_robustness(tmp_path: Path) -> None:
    module, _, result = _train(PGDAT, tmp_path, eps=EPS, step_size=EPS, steps=1, random_start="none")
    clean, robust = _population(module)
    assert abs(clean - P) <= 0.02 and abs(robust - P) <= 0.02, (clean, robust)
    assert abs(result["clean_acc"] - P) <= 0.02
    assert abs(result["attacks"]["native_pgd1_step0.3795_norandstart_margin_linf_0.3795"]["robust_acc"] - P) <= 0.02
    assert robust <= theorem_2_1_bound(clean, P) + 1e-12
