"""The trade-off digits (docs/tradeoff.md, "An image benchmark"): bounds, seeding, splits, the class pattern."""

from __future__ import annotations

import pytest
import torch

from robustlit.data import DigitsDataModule, TradeoffDigitsDataModule
from robustlit.data.epoch_order import EpochShuffle
from robustlit.data.tradeoff_digits import class_patterns


def _splits(dm):
    dm.setup("fit")
    return [d.tensors for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]


def test_same_splits_and_labels_as_the_digits_inputs_in_unit_interval_and_seeded():
    plain, tradeoff, again = (
        _splits(DigitsDataModule()),
        _splits(TradeoffDigitsDataModule()),
        _splits(TradeoffDigitsDataModule()),
    )
    for (x0, y0), (x1, y1), (x2, _) in zip(plain, tradeoff, again, strict=True):
        assert torch.equal(y0, y1) and x0.shape == x1.shape
        assert x1.min() >= 0 and x1.max() <= 1
        assert torch.equal(x1, x2)  # seeded: identical in every run
        assert not torch.equal(x0, x1)
    other = _splits(TradeoffDigitsDataModule(data_seed=1))
    assert not torch.equal(other[0][0], tradeoff[0][0])


def test_pattern_is_added_unclipped_and_agrees_with_the_label_at_the_chosen_rate():
    dm = TradeoffDigitsDataModule(downsample=1, noise_std=0.0, amplitude=0.05, agreement=0.8, contrast=(1.0, 1.0))
    (x, y), *_ = _splits(DigitsDataModule())
    images, shown = dm.transform(x, y, 0)
    patterns = class_patterns(10, (1, 8, 8), dm.data_seed)
    # no degradation: images = a + (1 - 2a) x + a P_shown exactly (the rescaling keeps the pattern unclipped)
    torch.testing.assert_close(images, 0.05 + 0.9 * x + 0.05 * patterns[shown])
    agree = (shown == y).float().mean().item()
    assert agree == pytest.approx(0.8, abs=0.04)
    assert (shown[shown != y] != y[shown != y]).all()
    # the pattern alone decodes the shown class (matched filter on the residual)
    residual = images - 0.05 - 0.9 * x
    decoded = torch.einsum("nchw,kchw->nk", residual, patterns).argmax(dim=1)
    assert torch.equal(decoded, shown)


def test_degradation_lowers_the_stroke_information_and_an_eps_2a_change_swaps_the_pattern():
    (x, y), *_ = _splits(DigitsDataModule())
    dm = TradeoffDigitsDataModule(amplitude=0.05)
    images, shown = dm.transform(x, y, 0)
    patterns = class_patterns(10, (1, 8, 8), dm.data_seed)
    # an Linf change of 2a = 0.1 turns pattern c into pattern c' exactly (before clipping)
    target = (shown + 1) % 10
    swapped = images + 0.05 * (patterns[target] - patterns[shown])
    assert (swapped - images).abs().max() <= 0.1 + 1e-6
    # degraded strokes differ from the digits (downsampling + noise), the noise is seeded per split
    strokes = (images - 0.05 * patterns[shown] - 0.05) / 0.9
    assert (strokes - x).abs().mean() > 0.05


def test_training_order_is_the_epoch_seeded_one_and_bad_arguments_are_refused():
    dm = TradeoffDigitsDataModule(batch_size=32)
    dm.setup("fit")
    assert isinstance(dm.train_dataloader().sampler, EpochShuffle)
    with pytest.raises(ValueError, match="amplitude"):
        TradeoffDigitsDataModule(amplitude=0.6)
    with pytest.raises(ValueError, match="occlusion"):
        TradeoffDigitsDataModule(occlusion=8)
    occluded = TradeoffDigitsDataModule(occlusion=3, amplitude=0.0, noise_std=0.0, downsample=1)
    (x, y), *_ = _splits(DigitsDataModule())
    images, _ = occluded.transform(x, y, 0)
    assert ((images == 0).flatten(1).sum(dim=1) >= 9).all()  # a 3x3 zeroed square in every image


def test_each_image_has_its_own_stroke_contrast_within_the_range():
    (x, y), *_ = _splits(DigitsDataModule())
    dm = TradeoffDigitsDataModule(noise_std=0.0, amplitude=0.0, contrast=(0.05, 1.0))
    images, _ = dm.transform(x, y, 0)
    # without noise and pattern the image is k * digit: the ratio of the brightest pixels is the contrast k
    k = images.flatten(1).max(dim=1).values / x.flatten(1).max(dim=1).values
    assert k.min() >= 0.05 - 1e-6 and k.max() <= 1.0 + 1e-6
    assert k.min() < 0.1 and k.max() > 0.95 and k.std() > 0.2  # spread over the range
    torch.testing.assert_close(images, k.view(-1, 1, 1, 1) * x)
    with pytest.raises(ValueError, match="contrast"):
        TradeoffDigitsDataModule(contrast=(0.5, 0.2))
