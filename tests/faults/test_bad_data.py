"""Bad data is named by dataset index before any model call: a NaN pixel is not blamed on the model, a label out
of range is not a bare IndexError of the loss (issue 23, case 7; docs/faults.md)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from fault_runs import record
from torch import nn

from robustlit.data import DigitsDataModule
from robustlit.methods import Standard
from robustlit.models import SmallCNN


class CorruptDigits(DigitsDataModule):
    """The digits with one NaN pixel in test image ``nan_index`` and label 10 at training index ``label_index``."""

    def __init__(self, nan_index: int | None = None, label_index: int | None = None) -> None:
        super().__init__(batch_size=16)
        self.nan_index, self.label_index = nan_index, label_index

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.nan_index is not None:
            self.test_dataset.tensors[0][self.nan_index, 0, 3, 3] = float("nan")
        if self.label_index is not None:
            self.train_dataset.tensors[1][self.label_index] = 10


def _module() -> tuple[Standard, list[int]]:
    torch.manual_seed(0)
    module = Standard(backbone=SmallCNN(width=8, hidden=16), num_classes=10)
    calls: list[int] = []
    module.classifier.register_forward_hook(lambda *args: calls.append(1))
    return module, calls


def _trainer(tmp_path) -> pl.Trainer:  # noqa: ANN001
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_epochs=1,
        limit_train_batches=1.0,
        limit_val_batches=1,
        inference_mode=False,
    )


def test_a_nan_pixel_is_named_by_dataset_index_before_any_model_call(tmp_path) -> None:  # noqa: ANN001
    module, calls = _module()
    with pytest.raises(
        ValueError, match=r"Standard: test batch 0: NaN or infinite input values at dataset indices \[11\]"
    ) as error:
        _trainer(tmp_path).test(module, datamodule=CorruptDigits(nan_index=11), verbose=False)
    record(
        fault="one pixel of test image 11 set to NaN, then `test` (the method's clean test metrics)",
        happened=f"stopped before any model call ({len(calls)} forward passes): "
        f"`{str(error.value)[:95]}...` (before: 'non-finite logits ... check the weights', blamed on the model)",
        handled="`RobustClassifier.on_{train,validation,test,predict}_batch_start` test every batch once (finite "
        "inputs, labels in 0..K-1) and name the dataset indices from the loader's sampler",
    )
    assert calls == [] and "the model" not in str(error.value).split(".")[0]


def test_a_label_out_of_range_is_named_by_dataset_index(tmp_path) -> None:  # noqa: ANN001
    module, calls = _module()
    with pytest.raises(ValueError, match=r"labels \[10\] outside 0\.\.9 at dataset indices \[7\]") as error:
        _trainer(tmp_path).fit(module, datamodule=CorruptDigits(label_index=7))
    record(
        fault="the label of training example 7 set to 10 (10 classes), then `fit`",
        happened=f"stopped at the batch holding it, before the model saw that batch: `{str(error.value)[:100]}...` "
        "(before: a bare `IndexError: Target 10 is out of bounds`, no dataset index)",
        handled="the same batch test; the index comes from the epoch's shuffled order (`EpochShuffle`)",
    )
    assert "training batch" in str(error.value)


def test_sound_batches_cost_one_test_and_pass(tmp_path) -> None:  # noqa: ANN001
    module, calls = _module()
    _trainer(tmp_path).test(module, datamodule=CorruptDigits(), verbose=False)
    assert calls  # the model ran on every batch
    assert isinstance(module.classifier, nn.Module)
