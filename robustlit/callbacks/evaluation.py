"""The machinery every evaluation callback shares (docs/evaluation.md, docs/contracts.md).

:class:`EvaluationCallback` owns when an evaluation runs (stages, ``every_n_epochs``, the last epoch, never
during the sanity check) and on how much (``num_examples``, within the Trainer's ``limit_val_batches`` /
``limit_test_batches``; one batch under ``fast_dev_run``), the gradient check of evaluations that attack,
exact DDP sharding of fixed batches with gathering and a check that every example 0..n-1 is counted once,
per-batch seeding, the optional resumable per-batch cache, reading batches through a ``DataLoader``
(``num_workers``), progress lines, logging, the rank-0 JSON summary, figures (PNG + JSON data into each
logger's run folder, and the logger's image API where it has one), the rich table and checkpoint state.

A concrete evaluation implements only what is its own:

* :meth:`~EvaluationCallback.evaluate_stage`: the summary of one stage (usually a call to its own
  ``evaluate``, which computes per-batch columns with :meth:`~EvaluationCallback.collect` and summarises them);
* :meth:`~EvaluationCallback.metrics`: the flat ``{name: value}`` to log;
* :meth:`~EvaluationCallback.print_summary`, and optionally :meth:`~EvaluationCallback.figures`,
  :meth:`~EvaluationCallback.texts`, :meth:`~EvaluationCallback.json_summary`, :meth:`~EvaluationCallback.state_fields`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustlit.attacks.ball import Bounds
from robustlit.attacks.eval_mode import check_gradients_available
from robustlit.callbacks.batch_cache import atomic_save, read_batch, write_batch
from robustlit.utils import distributed
from robustlit.utils.batch_checks import check_evaluation_batch
from robustlit.utils.fingerprint import model_fingerprint
from robustlit.utils.finite import check_finite_logits, guard_outputs

Stage = Literal["validate", "test"]
#: strides of the per-batch seed ``seed + BATCH_SEED_STRIDE * batch_id + PART_SEED_STRIDE * part``
BATCH_SEED_STRIDE, PART_SEED_STRIDE = 100_003, 7919
BatchFn = Callable[[Tensor, Tensor, int], dict[str, Tensor]]
#: the longest cache tag kept as written in a cache folder's name; a longer one is shortened and hashed
_LONGEST_TAG = 160


def dataset_of(loaders: object) -> Dataset:
    """The dataset of a Trainer's (first) evaluation dataloader."""
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    return loader.dataset  # type: ignore[union-attr]


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals; ``-`` for None or NaN."""
    return "-" if value is None or value != value else f"{100 * value:.2f}%"


def batch_seed(seed: int, batch_id: int, part: int = 0) -> int:
    """Seed of part ``part`` (e.g. the k-th attack) of global batch ``batch_id``: never a function of the rank."""
    return seed + BATCH_SEED_STRIDE * batch_id + PART_SEED_STRIDE * part


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the body with the global RNGs (CPU, and ``device`` if CUDA) seeded, restoring them afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def scheduled(trainer: pl.Trainer, every_n_epochs: int) -> bool:
    """Whether an evaluation every ``every_n_epochs`` epochs runs at this epoch of ``fit``: on multiples of
    ``every_n_epochs`` and at the last epoch (always true outside ``fit``)."""
    if trainer.state.fn != "fit":
        return True
    last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
    return (trainer.current_epoch + 1) % every_n_epochs == 0 or last_epoch


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``2 h 04 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Examples done of this rank's share and the time left, shown by rank 0: a task in the rich progress bar
    when one is given (the Trainer's ``RichProgressBar`` on a terminal), else a plain line at most every
    ``interval`` seconds (readable in a log file or a cluster job's output).

    The time left extrapolates the examples computed so far (examples read from a cache count as done but
    not in the rate)."""

    def __init__(self, name: str, mine: int, total: int, interval: float = 10.0, rich: Any = None) -> None:
        self.name, self.mine, self.total, self.interval = name, mine, total, interval
        self.done, self.computed, self.start = 0, 0, time.monotonic()
        self.last = self.start
        self.rich = rich if distributed.world()[0] == 0 else None
        self.task = self.rich.add_task(f"[cyan]{name}", total=mine) if self.rich is not None else None

    def eta(self) -> float | None:
        """Seconds left at the rate of the examples computed so far (None before the first one)."""
        if self.computed == 0:
            return None
        rate = self.computed / max(time.monotonic() - self.start, 1e-9)
        return (self.mine - self.done) / rate

    def advance(self, examples: int, computed: bool = True) -> None:
        self.done += examples
        self.computed += examples if computed else 0
        if self.rich is not None:
            self.rich.update(self.task, advance=examples)
            return
        now = time.monotonic()
        eta = self.eta()
        informative = eta is None or eta >= self.interval  # "about 0 s left" only lengthens a log
        if now - self.last >= self.interval and informative and distributed.world()[0] == 0:
            self.last = now
            share = "" if self.mine == self.total else f" (this rank's share of {self.total})"
            left = f", about {format_seconds(eta)} left" if eta is not None else ""
            print(
                f"{self.name}: {self.done}/{self.mine} examples{share}, {format_seconds(now - self.start)}{left}",
                flush=True,
            )

    def close(self) -> None:
        """Remove the rich task (the plain lines need no closing)."""
        if self.rich is not None and self.task is not None:
            self.rich.remove_task(self.task)
            self.task = None


def rich_progress_of(trainer: pl.Trainer | None) -> Any:
    """The live ``rich`` Progress of the Trainer's ``RichProgressBar`` when stdout is a terminal, else None."""
    if trainer is None or not sys.stdout.isatty():
        return None
    from lightning.pytorch.callbacks import RichProgressBar

    bar = getattr(trainer, "progress_bar_callback", None)
    if isinstance(bar, RichProgressBar) and bar.is_enabled:
        return getattr(bar, "progress", None)
    return None


class EvaluationCallback(Callback):
    """Base class of evaluation callbacks: schedule, sharding, seeding, cache, reports and state.

    Args:
        num_examples: evaluate the first ``num_examples`` examples (``None``: all).
        batch_size: examples per evaluation batch (the unit dealt to ranks, seeded and cached).
        every_n_epochs: frequency during ``fit`` (the last epoch always runs).
        stages: run at ``validate`` (incl. validation during fit) and/or ``test``.
        seed: base seed of the evaluation's randomness.
        cache_dir: directory of resumable per-batch results, keyed by a hash of the model weights
            (``None``: no cache).
        print_table: print the rich table at the end of fit/validate/test (rank 0).
        num_workers: processes reading the evaluation batches (a ``DataLoader`` over the fixed batches).
    """

    #: ``<report_name>_<stage>.json`` in the log dir
    report_name: ClassVar[str] = "evaluation"
    #: title of the rich table (after ``<stage>: ``)
    title: ClassVar[str] = "evaluation"
    #: whether the evaluation computes gradients (attacks): checked at the start of validate/test
    needs_gradients: ClassVar[bool] = False
    default_stages: ClassVar[tuple[str, ...]] = ("validate", "test")

    def __init__(
        self,
        num_examples: int | None,
        batch_size: int,
        every_n_epochs: int = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        print_table: bool = True,
        num_workers: int = 0,
    ) -> None:
        name = type(self).__name__
        for field, value in (("num_examples", num_examples or 1), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name}.{field} must be >= 1; got {value}")
        if num_workers < 0:
            raise ValueError(f"{name}.num_workers must be >= 0; got {num_workers}")
        if every_n_epochs < 1:
            raise ValueError(f"{name}.every_n_epochs must be >= 1; got {every_n_epochs}")
        self.num_examples, self.batch_size, self.every_n_epochs = num_examples, batch_size, every_n_epochs
        self.stages = set(stages or self.default_stages)
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.print_table, self.num_workers = print_table, num_workers
        self.results: dict[str, dict] = {}
        self._limit: int | float = 1.0  # the Trainer's limit_val_batches / limit_test_batches during a run
        # during run(): the evaluated model (its outputs are checked), its number of classes, the Trainer
        self._model: nn.Module | None = None
        self._num_classes: int | None = None
        self._trainer: pl.Trainer | None = None

    # ---- what a concrete evaluation implements ---------------------------------------------------
    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        """The summary of one evaluation of ``pl_module`` on ``dataset`` at ``stage`` (``val``/``test``; identical
        on every rank)."""
        raise NotImplementedError

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        """The flat ``{metric name: value}`` logged for a summary."""
        raise NotImplementedError

    def print_summary(self, summary: dict, title: str) -> None:
        """Print the rich table of a summary."""

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        """``{name: (figure, its data)}``; logged as ``<stage>/<name>``, saved as ``<name>_<stage>.png/.json``."""
        return {}

    def texts(self, summary: dict, stage: str) -> dict[str, str]:
        """``{name: text}`` sent to loggers with a text API as ``<stage>/<name>``."""
        return {}

    def json_summary(self, summary: dict) -> dict:
        """What goes into ``<report_name>_<stage>.json`` (default: the whole summary)."""
        return summary

    def state_fields(self) -> dict[str, Any]:
        """What distinguishes two instances of the callback (their checkpoint state is kept apart)."""
        return {"stages": sorted(self.stages)}

    # ---- schedule --------------------------------------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.needs_gradients and "validate" in self.stages and not trainer.sanity_checking:
            check_gradients_available()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.needs_gradients and "test" in self.stages:
            check_gradients_available()

    def due(self, trainer: pl.Trainer) -> bool:
        """Whether validation at this point runs the evaluation: every ``every_n_epochs`` and at the last epoch."""
        if "validate" not in self.stages or trainer.sanity_checking:
            return False
        return scheduled(trainer, self.every_n_epochs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.due(trainer):
            self.run(trainer, pl_module, "val", dataset_of(trainer.val_dataloaders))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self.run(trainer, pl_module, "test", dataset_of(trainer.test_dataloaders))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print("val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("test")

    # ---- one evaluation --------------------------------------------------------------------------
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, dataset: Dataset) -> None:
        """Evaluate, log the metrics, keep the summary, write JSON and figures (collective under DDP)."""
        # fast_dev_run sets both limits to 1 (one batch)
        self._limit = trainer.limit_val_batches if stage == "val" else trainer.limit_test_batches
        self._model = getattr(pl_module, "classifier", pl_module)
        self._num_classes = getattr(pl_module, "num_classes", None)
        self._trainer = trainer
        try:
            summary = self.evaluate_stage(trainer, pl_module, dataset, stage)
        finally:
            self._limit, self._model, self._num_classes, self._trainer = 1.0, None, None, None
        summary["epoch"] = trainer.current_epoch
        self.results[stage] = summary
        pl_module.log_dict(self.metrics(summary, stage), on_step=False, on_epoch=True, sync_dist=True)
        log_dir = trainer.log_dir  # a collective under DDP: read it on every rank
        self._report(trainer, log_dir, stage, summary)

    def size(self, dataset: Dataset) -> int:
        """How many examples are evaluated: the first ``num_examples``, within the Trainer's limit."""
        n = len(dataset) if self.num_examples is None else min(self.num_examples, len(dataset))  # type: ignore[arg-type]
        return self.within_limit(n, self.batch_size)

    def within_limit(self, n: int, per_batch: int) -> int:
        """At most what the Trainer's ``limit_val_batches`` / ``limit_test_batches`` lets this run see: an int
        counts batches of ``per_batch`` examples, a float is a fraction of the ``n`` examples (at least one)."""
        limit = self._limit
        if isinstance(limit, int):
            return min(n, limit * per_batch)
        return n if limit >= 1.0 else max(1, int(n * limit))

    def collect(
        self,
        dataset: Dataset,
        batch_fn: BatchFn,
        device: torch.device,
        bounds: Bounds,
        cache_model: nn.Module | None = None,
        cache_tag: str = "",
    ) -> dict[str, Tensor]:
        """Per-example columns of the first :meth:`size` examples, gathered in index order (every rank).

        ``batch_fn(x, y, batch_id)`` returns ``{column: (B, ...) tensor}`` for one batch; whole batches are
        dealt to ranks (:func:`robustlit.utils.distributed.map_dataset`), so results do not depend on the
        world size. ``label`` and ``index`` columns are added. With ``cache_dir`` and ``cache_model``, a
        finished batch is stored under a hash of the model weights (and ``cache_tag``) with a SHA-256 of its
        columns and reused; a rerun prints how many it reused, and a cached file that is unreadable or fails its
        checksum is named, deleted and computed again (:mod:`robustlit.callbacks.batch_cache`). Writes go to a
        process-unique temporary file, then ``os.replace``, so several jobs may share one cache folder.

        Every batch is validated before ``batch_fn`` sees it (finite, within ``bounds``, labels in
        0..K-1: :func:`robustlit.utils.batch_checks.check_evaluation_batch`), and every forward pass of
        the evaluated model (``cache_model``, else the module's ``classifier`` during :meth:`run`) is
        watched: a non-finite output, or a non-finite floating-point column, stops the evaluation with an
        error naming the batch and its dataset indices (a NaN row must never be counted as class 0).
        """
        if self.needs_gradients:
            check_gradients_available()
        name = type(self).__name__
        n = self.size(dataset)
        cache = self._cache_root(cache_model, n, cache_tag)
        mine = distributed.my_batches(n, self.batch_size)
        # cached batches are read (and verified) first: a bad file is discarded and its batch computed again
        files = {b: cache / f"batch{b:06d}.pt" for b, _ in mine} if cache is not None else {}
        stored = {b: read_batch(path, name) for b, path in files.items() if path.exists()}
        stored = {b: columns for b, columns in stored.items() if columns is not None}
        cached = set(stored)  # not read again: the other batches are read in order (num_workers may prefetch them)
        mine_examples = sum(len(indices) for _, indices in mine)
        progress = Progress(name, mine_examples, n, rich=rich_progress_of(self._trainer))
        watched = cache_model if cache_model is not None else self._model

        def one_batch(batch_id: int, indices: list[int], batch: Any) -> dict[str, Tensor]:
            path = cache / f"batch{batch_id:06d}.pt" if cache is not None else None
            if batch_id in cached:
                row = stored.pop(batch_id)
            else:
                where = f"{name}: batch {batch_id} (dataset indices {indices[0]}..{indices[-1]})"
                x, y = batch[:2]
                x, y = x.to(device), y.to(device)
                check_evaluation_batch(x, y, indices, bounds, self._num_classes, where)
                row = {"label": y, **batch_fn(x, y, batch_id)}
                guard.check(where)
                for key, value in row.items():
                    if value.is_floating_point():
                        check_finite_logits(value, f"{where}, column {key!r}", allow_inf=True)
                row = {key: value.detach().cpu() for key, value in row.items()}
                if path is not None:
                    write_batch(row, path)
            progress.advance(len(indices), computed=batch_id not in cached)
            return row

        with guard_outputs(watched) as guard:
            try:
                columns = distributed.map_dataset(
                    dataset, n, self.batch_size, one_batch, skip=cached, num_workers=self.num_workers
                )
            finally:
                progress.close()
        if cached and distributed.world()[0] == 0:
            print(f"{name}: reused {len(cached)} of {len(mine)} cached batches from {cache}", flush=True)
        return columns

    def seeded(self, batch_id: int, part: int, device: torch.device) -> Any:
        """Context in which the randomness of ``part`` of batch ``batch_id`` is fixed, whatever the world size."""
        return seeded(batch_seed(self.seed, batch_id, part), device)

    def _cache_root(self, model: nn.Module | None, n: int, tag: str) -> Path | None:
        if self.cache_dir is None or model is None:
            return None
        # a radius written as a fraction (8/255) names an attack with a slash: not a folder separator here
        tag = tag.replace("/", "over")
        if len(tag) > _LONGEST_TAG:  # many attacks, each named with its settings: a folder name has 255 bytes at most
            tag = f"{tag[: _LONGEST_TAG - 13]}-{hashlib.sha256(tag.encode()).hexdigest()[:12]}"
        leaf = f"n{n}-bs{self.batch_size}-seed{self.seed}" + (f"-{tag}" if tag else "")
        return self.cache_dir / type(self).__name__ / f"model-{model_fingerprint(model)}" / leaf

    # ---- reports ---------------------------------------------------------------------------------
    @rank_zero_only
    def _report(self, trainer: pl.Trainer, log_dir: str | None, stage: str, summary: dict) -> None:
        folders = {Path(d) for d in [log_dir, *(_folder_of(lg) for lg in trainer.loggers)] if d is not None}
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        if log_dir is not None:
            path = Path(log_dir) / f"{self.report_name}_{stage}.json"
            path.write_text(json.dumps(self.json_summary(summary), indent=2))
        for name, (figure, data) in self.figures(summary, stage, trainer.current_epoch).items():
            stem = f"{name.replace('/', '_')}_{stage}"
            for folder in folders:
                figure.savefig(folder / f"{stem}.png", dpi=120)
                (folder / f"{stem}.json").write_text(json.dumps(data, indent=2))
            for logger in trainer.loggers:
                send_figure(logger, f"{stage}/{name}", figure, trainer.global_step)
        for name, text in self.texts(summary, stage).items():
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_text(f"{stage}/{name}", text, trainer.global_step)

    @rank_zero_only
    def _print(self, stage: str) -> None:
        if self.print_table and stage in self.results:
            self.print_summary(self.results[stage], title=f"{stage}: {self.title}")

    # ---- checkpoint state ------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        """Unique per configuration, so several instances (e.g. one per stage) can be checkpointed."""
        return self._generate_state_key(**self.state_fields())

    def state_dict(self) -> dict:
        return {"results": self.results}

    def load_state_dict(self, state_dict: dict) -> None:
        self.results = state_dict.get("results", {})


def send_figure(logger: object, name: str, figure: Figure, step: int) -> None:
    """Send a figure through the logger's own image API where it has one: TensorBoard's ``add_figure``,
    W&B's ``log_image``, MLflow's ``log_figure``. Other loggers (CSV) get the PNG in their folder only."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_figure(name, figure, global_step=step, close=False)
    elif type(logger).__name__ == "WandbLogger":
        logger.log_image(key=name, images=[figure], step=step)  # type: ignore[attr-defined]
    elif type(logger).__name__ == "MLFlowLogger":
        run_id = logger.run_id  # type: ignore[attr-defined]
        logger.experiment.log_figure(run_id, figure, f"{name.replace('/', '_')}_step{step}.png")  # type: ignore[attr-defined]


def _folder_of(logger: object) -> str | None:
    """The run folder of a logger (``log_dir``, else ``save_dir``), or None."""
    for attribute in ("log_dir", "save_dir"):
        folder = getattr(logger, attribute, None)
        if isinstance(folder, str | Path):
            return str(folder)
    return None


__all__ = [
    "EvaluationCallback",
    "Progress",
    "Stage",
    "atomic_save",
    "batch_seed",
    "dataset_of",
    "format_seconds",
    "pct",
    "scheduled",
    "seeded",
]
