"""TrainingSetKNNSigma: built from the training set at fit, saved in and restored from the checkpoint."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from smoothing_helpers import DIGITS_MEAN, DIGITS_STD, digits

from robustlit.certify import KNNSigma
from robustlit.methods.gaussian_smoothing import GaussianSmoothing, TrainingSetKNNSigma
from robustlit.models import LinearClassifier


def _model(**sigma_kwargs: object) -> GaussianSmoothing:
    sigma = TrainingSetKNNSigma(sigma_base=0.25, rate=0.1, k=5, normaliser=1.4, **sigma_kwargs)
    return GaussianSmoothing(sigma=sigma, backbone=LinearClassifier(64, 10), mean=DIGITS_MEAN, std=DIGITS_STD)


def _fit_two_steps(model: GaussianSmoothing, root: Path) -> Path:
    trainer = pl.Trainer(
        max_steps=2,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=digits())
    path = root / "knn.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_reference_is_the_training_set_and_survives_the_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _model()
    path = _fit_two_steps(model, tmp_path)
    train_x = digits().train_dataset.tensors[0]
    assert torch.equal(model.sigma_fn.reference, train_x.flatten(1))
    expected = KNNSigma(0.25, 0.1, train_x, k=5, normaliser=1.4)

    test_x = digits().test_dataset.tensors[0][:32]
    sigma = model.sigma_fn(test_x)
    assert torch.allclose(sigma, expected(test_x))
    assert sigma.std() > 0.005  # really input-dependent

    loaded = GaussianSmoothing.load_from_checkpoint(path, weights_only=False)
    assert torch.equal(loaded.sigma_fn(test_x), sigma)
    # What the CLI does: rebuild from the config (an empty reference), then load the state dict.
    fresh = _model()
    assert not fresh.sigma_fn.has_reference
    fresh.load_state_dict(torch.load(path, weights_only=False)["state_dict"])
    assert torch.equal(fresh.sigma_fn(test_x), sigma)
    result = fresh.smoothed_classifier().certify(test_x[0], n0=20, n=200, alpha=0.01, batch_size=100)
    assert result.radius_method == "input_dependent"


def test_unfitted_reference_gives_a_clear_error() -> None:
    model = _model()
    with pytest.raises(RuntimeError, match="no reference set yet.*ckpt_path"):
        model.smoothed_classifier().certify(torch.rand(1, 8, 8), n0=10, n=10, alpha=0.01, batch_size=10)


def test_max_reference_keeps_a_fixed_seeded_subset() -> None:
    train_x = digits().train_dataset.tensors[0]
    a, b = (TrainingSetKNNSigma(0.25, 0.1, k=5, max_reference=100) for _ in range(2))
    a.set_reference(train_x)
    b.set_reference(train_x)
    assert a.reference.shape == (100, 64) and torch.equal(a.reference, b.reference)
    with pytest.raises(ValueError, match="max_reference must be >= k"):
        TrainingSetKNNSigma(0.25, 0.1, k=20, max_reference=10)
