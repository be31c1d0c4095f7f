"""AR-AdaLS (Qin et al., NeurIPS 2021): label smoothing adapted to each example's adversarial robustness.

AR-AdaLS (adversarial-robustness-based adaptive label smoothing) trains with per-example smoothed
targets ỹ = (1 − s_r) onehot(y) + s_r / K, where r is the example's robustness bin:

1. every ``rescore_every_n_epochs`` epochs (and at the first validation of ``fit``) each training and
   validation example gets a robustness score R(x): by default (``score_method: bisection``) the smallest
   Linf radius in [0, ``max_radius``] at which PGD was seen to flip the model's prediction, found by
   bisection (:func:`robustlit.losses.robustness_score.flip_radius`, a continuous score), or
   (``score_method: grid``) the smallest radius on the grid ``radii`` that flips it
   (:func:`robustlit.losses.robustness_score.robustness_score`; coarse: most examples of a standard model
   tie at the smallest radius);
2. the training examples and, separately, the validation examples are split by rank into R bins of equal
   size (bin 0 = least robust; ties broken at random by a generator seeded with ``tie_break_seed`` and
   the epoch: :func:`robustlit.losses.label_smoothing.equal_size_bins`);
3. at every validation epoch end s_r ← clip(s_r + η (conf_r − acc_r), 0, 1) from the validation
   examples of bin r (over-confident bins get more smoothing), and s_r, the gaps and the bin occupancies are
   logged as ``adals/smoothing/bin_<r>``, ``adals/gap/bin_<r>``, ``adals/val_count/bin_<r>`` and
   ``adals/train_count/bin_<r>``.

All state (s_r, edges, training and validation scores and bins, last scoring epoch) lives in buffers, so it is
checkpointed and restored on resume. Training batches are matched to their stored scores by dataset
index: at ``setup("fit")`` the DataModule's ``train_dataset`` is wrapped in
:class:`robustlit.data.indexed.IndexedDataset` (batches become (x, y, index)), and :meth:`ARAdaLS.training_step`
reads the indices from its ``batch`` argument. A training example without a stored bin (a user-supplied DataLoader
without indices, or an example left unscored) is scored when it is drawn and placed with the bin edges of
the last scoring (edge r = the largest training score in bin r), at the cost of one scoring. When the
Trainer limits an epoch (``limit_train_batches`` / ``limit_val_batches``), only as many training /
validation examples as an epoch can see are scored (the first ones by index). With
training augmentation the stored score is that of the augmented view drawn when the set was scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset

from robustlit.attacks.eval_mode import check_gradients_available
from robustlit.data.indexed import IndexedDataset
from robustlit.losses.label_smoothing import (
    AdaptiveSmoothingSchedule,
    bin_confidence_accuracy,
    equal_size_bins,
    smoothed_cross_entropy,
)
from robustlit.losses.robustness_score import RobustnessScore, ScoreLoss, flip_radius, robustness_score
from robustlit.methods.base import RobustClassifier
from robustlit.utils.distributed import map_dataset, world

#: Default robustness grid: 0.5/255 .. 32/255 (CIFAR-scale Linf radii).
DEFAULT_RADII: tuple[float, ...] = tuple(r / 255 for r in (0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32))

#: ``bisection``: continuous smallest flipping radius (:func:`flip_radius`); ``grid``: smallest radius on ``radii``.
ScoreMethod = Literal["bisection", "grid"]


def _dataset_of(loaders: object) -> Dataset:
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    return loader.dataset  # type: ignore[union-attr]


class ARAdaLS(RobustClassifier):
    """Adversarial-robustness-based adaptive label smoothing (AR-AdaLS, Qin et al., NeurIPS 2021).

    Args:
        num_bins: number R of robustness bins (equal size, by rank).
        radii: increasing Linf grid of the ``grid`` score (pixel units); default 0.5/255 .. 32/255. Its last
            radius is also the default ``max_radius``.
        score_method: ``bisection`` (default; continuous score) or ``grid``.
        max_radius: largest radius of the ``bisection`` score (examples not flipped there get it as their
            score); default: the last of ``radii``.
        bisection_steps: bisection steps k of the score (resolution ``max_radius`` / 2^k).
        tie_break_seed: seed of the random order of tied scores when binning (plus the scoring epoch).
        steps: PGD steps per attack of the score (per radius, or per bisection step).
        score_step_size_factor: PGD step = factor · radius.
        score_loss: ``ce`` (against the predicted class) or ``margin``.
        init_smoothing: initial smoothing strength s_r of every bin (also used before the first scoring).
        smoothing_step_size: η of the update s_r ← clip(s_r + η (conf_r − acc_r), 0, 1).
        rescore_every_n_epochs: recompute the scores and bin edges every this many epochs.
        score_batch_size: batch size of the scoring and validation passes.
        num_val_examples: use the first this many validation examples for the update (``None``: all).
        **kwargs: see :class:`RobustClassifier`.
    """

    train_scores: Tensor
    val_scores: Tensor
    train_bins: Tensor
    val_bins: Tensor
    scored_epoch: Tensor

    def __init__(
        self,
        num_bins: PositiveInt = 10,
        radii: list[PositiveFloat] | None = None,
        steps: PositiveInt = 10,
        score_step_size_factor: PositiveFloat = 0.25,
        score_loss: ScoreLoss = "ce",
        score_method: ScoreMethod = "bisection",
        max_radius: PositiveFloat | None = None,
        bisection_steps: NonNegativeInt = 6,
        tie_break_seed: int = 0,
        init_smoothing: ClosedUnitInterval = 0.0,
        smoothing_step_size: NonNegativeFloat = 1.0,
        rescore_every_n_epochs: PositiveInt = 5,
        score_batch_size: PositiveInt = 256,
        num_val_examples: PositiveInt | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.radii = self._check_radii(DEFAULT_RADII if radii is None else radii)
        for name, value in (
            ("num_bins", num_bins),
            ("steps", steps),
            ("rescore_every_n_epochs", rescore_every_n_epochs),
            ("score_batch_size", score_batch_size),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}")
        if score_step_size_factor <= 0:
            raise ValueError(f"score_step_size_factor must be > 0; got {score_step_size_factor}")
        if smoothing_step_size < 0:
            raise ValueError(f"smoothing_step_size must be >= 0; got {smoothing_step_size}")
        if score_loss not in ("ce", "margin"):
            raise ValueError(f"score_loss must be 'ce' or 'margin'; got {score_loss!r}")
        if score_method not in ("bisection", "grid"):
            raise ValueError(f"score_method must be 'bisection' or 'grid'; got {score_method!r}")
        if bisection_steps < 0:
            raise ValueError(f"bisection_steps must be >= 0; got {bisection_steps}")
        self.max_radius = self._check_radii([self.radii[-1] if max_radius is None else max_radius])[0]
        self.score_method, self.bisection_steps, self.tie_break_seed = score_method, bisection_steps, tie_break_seed
        self.num_bins, self.steps, self.score_step_size_factor = num_bins, steps, score_step_size_factor
        self.score_loss, self.init_smoothing = score_loss, float(init_smoothing)
        self.smoothing_step_size = smoothing_step_size
        self.rescore_every_n_epochs, self.score_batch_size = rescore_every_n_epochs, score_batch_size
        self.num_val_examples = num_val_examples
        self.schedule = AdaptiveSmoothingSchedule(num_bins=num_bins, init_smoothing=init_smoothing)
        self.register_buffer("train_scores", torch.zeros(0))
        self.register_buffer("val_scores", torch.zeros(0))
        self.register_buffer("train_bins", torch.zeros(0, dtype=torch.long))
        self.register_buffer("val_bins", torch.zeros(0, dtype=torch.long))
        self.register_buffer("scored_epoch", torch.tensor(-1, dtype=torch.long))

    def _check_radii(self, radii: Sequence[float]) -> tuple[float, ...]:
        radii = tuple(float(r) for r in radii)
        if not radii or radii[0] <= 0 or any(b <= a for a, b in zip(radii, radii[1:], strict=False)):
            raise ValueError(
                f"radii must be a non-empty, strictly increasing list of positive radii; got {list(radii)}"
            )
        if self.bounds == (0.0, 1.0) and radii[-1] > 1:
            raise ValueError(f"radii are Linf radii in [0, 1] pixel units; got a largest radius of {radii[-1]}")
        return radii

    # ---- checkpoints: the score buffers change size ---------------------------------------------------
    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("train_scores", "val_scores", "train_bins", "val_bins"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
            elif name.endswith("bins") and prefix + "train_scores" in state_dict:  # checkpoints before equal-size bins
                state_dict[prefix + name] = torch.zeros(0, dtype=torch.long)
                setattr(self, name, torch.zeros(0, dtype=torch.long, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- training -------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Wrap the DataModule's training set so that batches carry dataset indices (see module docstring)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        dataset = getattr(datamodule, "train_dataset", None)
        if stage == "fit" and dataset is not None and not isinstance(dataset, IndexedDataset):
            datamodule.train_dataset = IndexedDataset(dataset)

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """A batch is (x, y) or, from the wrapped training set, (x, y, dataset indices): the indices find each
        example's stored bin (:meth:`example_smoothing`)."""
        x, y = batch[0], batch[1]
        index = batch[2] if len(batch) > 2 else None
        return self.checked_training_loss(self.training_loss(self.memory_format(x), y, index), len(y))

    def score(self, x: Tensor) -> RobustnessScore:
        """Robustness scores of ``x`` under the current model (gradients needed; attack discipline inside)."""
        if self.score_method == "bisection":
            return flip_radius(
                self.classifier,
                x,
                self.max_radius,
                bisection_steps=self.bisection_steps,
                steps=self.steps,
                step_size_factor=self.score_step_size_factor,
                bounds=self.bounds,
                loss=self.score_loss,
            )
        return robustness_score(
            self.classifier,
            x,
            self.radii,
            steps=self.steps,
            step_size_factor=self.score_step_size_factor,
            bounds=self.bounds,
            loss=self.score_loss,
        )

    def example_smoothing(self, x: Tensor, index: Tensor | None = None) -> Tensor | float:
        """Smoothing strength of each training example: its bin's s_r from the stored bin (found by its dataset
        ``index``), or init_smoothing before the first scoring. Examples without a stored bin (no index, or not
        scored) are scored now and placed with the bin edges."""
        if not bool(self.schedule.fitted):
            return self.init_smoothing
        bins = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
        if index is not None:
            known = index < self.train_bins.numel()
            bins[known] = self.train_bins[index[known].to(self.train_bins.device)].to(x.device)
        missing = bins < 0
        if missing.any():
            bins[missing] = self.schedule.assign(self.score(x[missing]).radius).to(x.device)
        return self.schedule.smoothing.to(x.device)[bins]

    def per_example_loss(self, x: Tensor, y: Tensor, index: Tensor | None = None) -> Tensor:
        """Smoothed CE against each example's own s_r (``index``: the examples' dataset indices, if known)."""
        return smoothed_cross_entropy(self(x), y, self.example_smoothing(x, index))

    def training_loss(self, x: Tensor, y: Tensor, index: Tensor | None = None) -> Tensor:
        return self.per_example_loss(x, y, index).mean()

    # ---- schedule updates (validation epoch end) ---------------------------------------------------------
    def _training_dataset(self) -> Dataset:
        datamodule = getattr(self.trainer, "datamodule", None)
        dataset = getattr(datamodule, "train_dataset", None)
        return dataset if dataset is not None else _dataset_of(self.trainer.train_dataloader)

    def _map_examples(self, dataset: Dataset, n: int, fn: Any) -> Tensor:
        """fn(x, y) -> (B, ...) over the first n examples, read and dealt to ranks in whole batches as the evaluation
        callbacks do (:func:`robustlit.utils.distributed.map_dataset`); gathered, in order."""

        def batch(_: int, indices: list[int], batch: Sequence[Tensor]) -> dict[str, Tensor]:
            x, y = batch[:2]
            return {"value": fn(x.to(self.device), y.to(self.device))}

        return map_dataset(dataset, n, self.score_batch_size, batch)["value"].to(self.device)

    def _predict(self, x: Tensor, y: Tensor) -> Tensor:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return torch.cat([self(x).softmax(dim=1), y.view(-1, 1).to(x.dtype)], dim=1)
        finally:
            self.train(was_training)

    def rescore(self, train_dataset: Dataset, val_dataset: Dataset, num_val: int, num_train: int | None = None) -> None:
        """Score the first ``num_train`` (default: all) training and ``num_val`` validation examples and split
        each set by rank into R equal-size bins (ties at random, seeded). Training examples left unscored keep
        NaN and bin −1 (scored when seen)."""
        check_gradients_available()
        total = len(train_dataset)
        num_train = total if num_train is None else min(num_train, total)
        scored = self._map_examples(train_dataset, num_train, lambda x, y: self.score(x).radius)
        self.train_scores = torch.cat([scored, scored.new_full((total - num_train,), float("nan"))])
        self.val_scores = self._map_examples(val_dataset, num_val, lambda x, y: self.score(x).radius)
        # the same seed on every rank (the scores are gathered), so every rank gets the same bins
        generator = torch.Generator().manual_seed(self.tie_break_seed + self.current_epoch)
        bins = self.schedule.fit_bins(scored, generator)
        self.train_bins = torch.cat([bins, bins.new_full((total - num_train,), -1)])
        self.val_bins = equal_size_bins(self.val_scores, self.num_bins, generator)
        self.scored_epoch.fill_(self.current_epoch)

    def update_schedule(self, val_dataset: Dataset, num_val: int) -> tuple[Tensor, Tensor, Tensor]:
        """s_r ← clip(s_r + η (conf_r − acc_r), 0, 1) from the validation bins; returns (smoothing, gap, count)."""
        out = self._map_examples(val_dataset, num_val, self._predict)
        probs, labels = out[:, :-1], out[:, -1].long()
        bins = self.val_bins[:num_val]
        conf, acc, counts = bin_confidence_accuracy(probs, labels, bins, self.num_bins)
        smoothing = self.schedule.update(conf, acc, counts, self.smoothing_step_size)
        return smoothing, conf - acc, counts

    def _within_limits(self, n: int, num_batches: float, loader: object) -> int:
        """At most the examples the Trainer's ``limit_*_batches`` lets an epoch see (all when unlimited)."""
        batch_size = getattr(loader, "batch_size", None)
        if batch_size is None or math.isinf(num_batches):
            return n
        return min(n, int(num_batches) * batch_size * world()[1])

    def on_validation_epoch_end(self) -> None:
        trainer = self.trainer
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        val_loader = trainer.val_dataloaders
        val_dataset = _dataset_of(val_loader)
        num_val = len(val_dataset) if self.num_val_examples is None else min(self.num_val_examples, len(val_dataset))
        num_val = self._within_limits(num_val, sum(trainer.num_val_batches), val_loader)
        due = not bool(self.schedule.fitted) or (self.current_epoch + 1) % self.rescore_every_n_epochs == 0
        if due or self.val_scores.numel() != num_val or self.val_bins.numel() != num_val:
            train_dataset = self._training_dataset()
            num_train = self._within_limits(len(train_dataset), trainer.num_training_batches, trainer.train_dataloader)
            self.rescore(train_dataset, val_dataset, num_val, num_train)
        smoothing, gap, counts = self.update_schedule(val_dataset, num_val)
        log = {"adals/mean_train_score": self.train_scores.nanmean()}
        train_counts = torch.bincount(self.train_bins[self.train_bins >= 0], minlength=self.num_bins)
        for r in range(self.num_bins):
            log[f"adals/smoothing/bin_{r}"] = smoothing[r]
            log[f"adals/val_count/bin_{r}"] = counts[r]
            log[f"adals/train_count/bin_{r}"] = train_counts[r].to(smoothing.dtype)
            if counts[r] > 0:
                log[f"adals/gap/bin_{r}"] = gap[r]
        self.log_dict(log, on_step=False, on_epoch=True, sync_dist=True)  # identical on every rank
