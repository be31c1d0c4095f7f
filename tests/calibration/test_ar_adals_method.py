"""AR-AdaLS and uniform label smoothing as training modules (Qin et al. 2021; docs/calibration.md)."""

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
    module = adals(smoothing_step_size=0.5)
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
        assert module.schedule.smoothing[r].item() == pytest.approx(min(max(0.5 * gap, 0.0), 1.0), abs=1e-6)
        assert logged[f"adals/smoothing/bin_{r}"].item() == pytest.approx(module.schedule.smoothing[r].item())
    assert module.schedule.smoothing.max() > 0
    # a training example now gets its bin's smoothing s_r, by index or (without an index) scored on the fly
    items = [data.train_dataset[i] for i in range(5)]
    x = torch.stack([item[0] for item in items])
    by_index = module.example_smoothing(x, torch.tensor([item[2] for item in items]))
    assert torch.equal(by_index, module.schedule.smoothing[module.train_bins[:5]])
    on_the_fly = module.example_smoothing(x)  # no index: scored now (same deterministic attack), placed by the edges
    assert torch.equal(on_the_fly, module.schedule.smoothing_for(module.train_scores[:5]))


class NeverFlips(nn.Module):
    """Constant logits: no radius flips the prediction, so every robustness score ties at the cap."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.arange(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 10) + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


@pytest.mark.parametrize(
    ("backbone", "options"),
    [
        ("never_flips", {"score_method": "bisection"}),
        ("standard", {"score_method": "grid", "radii": [0.1, 0.3]}),
    ],
    ids=["all-scores-capped", "standard-model-on-a-coarse-grid"],
)
def test_bins_hold_n_over_r_examples_when_scores_tie_heavily(backbone: str, options: dict) -> None:
    """Must-show of issue 13: with scores that tie heavily (all capped; or a standard model on a two-radius
    grid, where quantile edges leave a bin empty), the R = 3 bins of the 128 scored training and the 270
    validation examples hold ⌊n/R⌋ or ⌈n/R⌉ examples each, and the occupancy is logged."""
    net = NeverFlips() if backbone == "never_flips" else standard_net()
    torch.manual_seed(0)
    module = ARAdaLS(backbone=net, mean=(0.3,), std=(0.38,), **{**SCORING, **options})
    fit = trainer()
    fit.fit(module, DigitsDataModule(batch_size=64))
    scored = module.train_scores[module.train_scores.isfinite()]
    assert scored.numel() == 128
    assert scored.unique().numel() <= 2 and module.val_scores.unique().numel() <= 2  # the scores do tie
    train_counts = torch.bincount(module.train_bins[module.train_bins >= 0], minlength=3)
    val_counts = torch.bincount(module.val_bins, minlength=3)
    assert train_counts.tolist() in ([43, 43, 42], [43, 42, 43], [42, 43, 43])
    assert val_counts.tolist() == [90, 90, 90]
    # the quantile edges that this replaces leave a bin empty on these scores
    edges = torch.quantile(scored, torch.tensor([1 / 3, 2 / 3], dtype=scored.dtype))
    assert torch.bincount(torch.bucketize(scored, edges), minlength=3).min() == 0
    logged = fit.callback_metrics
    assert [logged[f"adals/train_count/bin_{r}"].item() for r in range(3)] == train_counts.tolist()
    assert [logged[f"adals/val_count/bin_{r}"].item() for r in range(3)] == val_counts.tolist()


def standard_net() -> nn.Module:
    """A small CNN after 60 Adam steps of plain cross-entropy on the digits (about 0.3 s)."""
    data = DigitsDataModule()
    data.setup()
    x, y = data.train_dataset.tensors
    torch.manual_seed(0)
    net = SmallCNN(10, 1, width=4, hidden=16)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        batch = torch.randint(0, len(x), (128,))
        loss = F.cross_entropy(net((x[batch] - 0.3) / 0.38), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


def test_the_bisection_score_separates_what_the_grid_ties() -> None:
    """A standard model: the grid score takes at most 5 values on 64 examples, the bisection score many."""
    data = DigitsDataModule()
    data.setup()
    x = data.val_dataset.tensors[0][:64]
    net = standard_net()
    common = {"backbone": net, "mean": (0.3,), "std": (0.38,), "num_bins": 3, "steps": 5}
    grid = ARAdaLS(score_method="grid", radii=[0.02, 0.05, 0.1, 0.2, 0.3], **common).score(x)
    bisection = ARAdaLS(score_method="bisection", max_radius=0.3, bisection_steps=6, **common).score(x)
    assert grid.flipped.float().mean() > 0.9 and bisection.flipped.float().mean() > 0.9  # the attack works
    assert grid.radius.unique().numel() <= 5
    assert bisection.radius.unique().numel() >= 32
    assert (bisection.radius <= 0.3 + 1e-6).all()
    # where the grid saw a flip at radius g, the bisection found one at most g (up to its 0.3 / 2^6 resolution)
    both = grid.flipped & bisection.flipped
    assert (bisection.radius[both] <= grid.radius[both] + 0.3 / 2**6 + 1e-6).float().mean() > 0.9


def test_state_survives_a_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    module = adals(smoothing_step_size=0.5, rescore_every_n_epochs=10)
    trainer(tmp_path).fit(module, DigitsDataModule(batch_size=64))
    saved = {name: buffer.clone() for name, buffer in module.named_buffers() if "metrics" not in name}
    assert {"schedule.smoothing", "schedule.edges", "schedule.fitted", "train_scores", "val_scores"} <= saved.keys()
    assert {"train_bins", "val_bins"} <= saved.keys()

    restored = ARAdaLS.load_from_checkpoint(tmp_path / "last.ckpt", backbone=Overconfident(), weights_only=False)
    for name, buffer in restored.named_buffers():
        if name in saved:
            assert torch.equal(buffer.nan_to_num(-1.0), saved[name].nan_to_num(-1.0)), name

    resumed = adals(smoothing_step_size=0.5, rescore_every_n_epochs=10)
    trainer(tmp_path, epochs=2).fit(
        resumed, DigitsDataModule(batch_size=64), ckpt_path=tmp_path / "last.ckpt", weights_only=False
    )
    # epoch 1 is not a rescoring epoch: the scores and edges come from the checkpoint, the smoothing kept moving from it
    assert int(resumed.scored_epoch) == 0
    assert torch.equal(resumed.train_scores.nan_to_num(-1.0), saved["train_scores"].nan_to_num(-1.0))
    assert torch.equal(resumed.schedule.edges, saved["schedule.edges"])
    assert not torch.equal(resumed.schedule.smoothing, saved["schedule.smoothing"])


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


def test_checkpoints_naming_the_old_import_path_still_load(tmp_path: Path) -> None:
    """Checkpoints written when AR-AdaLS lived in ``robustlit.methods.label_smoothing`` name that path."""
    from robustlit.checkpoint import _import_method
    from robustlit.methods.ar_adals import ARAdaLS as MovedARAdaLS

    assert _import_method("robustlit.methods.label_smoothing.ARAdaLS", tmp_path / "x.ckpt") is MovedARAdaLS
    assert ARAdaLS is MovedARAdaLS  # the old import path is the same class
