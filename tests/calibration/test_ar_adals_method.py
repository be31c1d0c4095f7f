"""AR-AdaLS and uniform label smoothing as training modules (docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from robustlit.data import DigitsDataModule
from robustlit.methods.label_smoothing import ARAdaLS, IndexedDataset, LabelSmoothing
from robustlit.models import SmallCNN

SCORING = {"num_bins": 3, "radii": [0.05, 0.15, 0.3], "steps": 2, "score_batch_size": 512}


class Overconfident(nn.Module):
    """A small CNN whose logits are multiplied by 30: confident far beyond its accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.net = SmallCNN(10, 1, width=4, hidden=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 30.0 * self.net(x)


def trainer(tmp_path: Path | None = None, epochs: int = 1) -> pl.Trainer:
    callbacks = [ModelCheckpoint(dirpath=tmp_path, save_last=True)] if tmp_path is not None else []
    return pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=tmp_path is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
    )


def adals(**kwargs: object) -> ARAdaLS:
    torch.manual_seed(0)
    return ARAdaLS(backbone=Overconfident(), mean=(0.3,), std=(0.38,), **{**SCORING, **kwargs})


def test_uniform_label_smoothing_is_torch_label_smoothing() -> None:
    module = LabelSmoothing(backbone=SmallCNN(10, 1, width=4, hidden=8), smoothing=0.2)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    assert torch.allclose(module.training_loss(x, y), F.cross_entropy(module(x), y, label_smoothing=0.2), atol=1e-6)
    with pytest.raises(ValueError, match="smoothing"):
        LabelSmoothing(backbone=SmallCNN(width=4), smoothing=1.5)


def test_an_over_confident_bin_gets_more_smoothing_end_to_end() -> None:
    module = adals(eps_step=0.5)
    data = DigitsDataModule(batch_size=64)
    fit = trainer()
    fit.fit(module, data)
    assert isinstance(data.train_dataset, IndexedDataset)  # batches carried dataset indices
    # limit_train_batches=2: the 2 x 64 examples an epoch can see are scored, the others wait (NaN)
    assert module.train_scores.shape == (1257,) and module.val_scores.shape == (270,)
    assert module.train_scores[:128].isfinite().all() and module.train_scores[128:].isnan().all()
    assert int(module.scored_epoch) == 0 and bool(module.schedule.fitted)
    logged = fit.callback_metrics
    gaps = {r: logged[f"adals/gap/bin_{r}"].item() for r in range(3) if f"adals/gap/bin_{r}" in logged}
    assert gaps and max(gaps.values()) > 0.1  # the x30 logits are over-confident
    for r, gap in gaps.items():
        assert module.schedule.eps[r].item() == pytest.approx(min(max(0.5 * gap, 0.0), 1.0), abs=1e-6)
        assert logged[f"adals/eps/bin_{r}"].item() == pytest.approx(module.schedule.eps[r].item())
    assert module.schedule.eps.max() > 0
    # a training example now gets its bin's eps, by index or (without an index) scored on the fly
    items = [data.train_dataset[i] for i in range(5)]
    x = torch.stack([item[0] for item in items])
    module._train_index = torch.tensor([item[2] for item in items])
    by_index = module.example_eps(x)
    module._train_index = None
    assert torch.equal(by_index, module.schedule.eps_for(module.train_scores[:5]))
    on_the_fly = module.example_eps(x)  # no index: scored now, with the same deterministic attack
    assert torch.equal(on_the_fly, by_index)


def test_state_survives_a_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    module = adals(eps_step=0.5, rescore_every_n_epochs=10)
    trainer(tmp_path).fit(module, DigitsDataModule(batch_size=64))
    saved = {name: buffer.clone() for name, buffer in module.named_buffers() if "metrics" not in name}
    assert {"schedule.eps", "schedule.edges", "schedule.fitted", "train_scores", "val_scores"} <= saved.keys()

    restored = ARAdaLS.load_from_checkpoint(tmp_path / "last.ckpt", backbone=Overconfident(), weights_only=False)
    for name, buffer in restored.named_buffers():
        if name in saved:
            assert torch.equal(buffer.nan_to_num(-1.0), saved[name].nan_to_num(-1.0)), name

    resumed = adals(eps_step=0.5, rescore_every_n_epochs=10)
    trainer(tmp_path, epochs=2).fit(
        resumed, DigitsDataModule(batch_size=64), ckpt_path=tmp_path / "last.ckpt", weights_only=False
    )
    # epoch 1 is not a rescoring epoch: the scores and edges come from the checkpoint, eps kept moving from it
    assert int(resumed.scored_epoch) == 0
    assert torch.equal(resumed.train_scores.nan_to_num(-1.0), saved["train_scores"].nan_to_num(-1.0))
    assert torch.equal(resumed.schedule.edges, saved["schedule.edges"])
    assert not torch.equal(resumed.schedule.eps, saved["schedule.eps"])


def test_scoring_under_inference_mode_fails_with_the_fix() -> None:
    # Lightning's fit-time validation never runs under inference mode; a direct call can
    module = adals()
    data = DigitsDataModule()
    data.setup()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode=False"):
        module.rescore(data.train_dataset, data.val_dataset, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"radii": [0.2, 0.1]}, "radii"), ({"radii": [0.5, 2.0]}, "radii"), ({"num_bins": 0}, "num_bins")],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ARAdaLS(backbone=SmallCNN(width=4), **kwargs)
