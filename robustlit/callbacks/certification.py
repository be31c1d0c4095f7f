"""Randomized-smoothing certification as a Lightning callback (Cohen et al. 2019; Suekenik et al. 2022;
docs/smoothing.md; docs/contracts.md: sound certificates, exact DDP counts)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from jsonargparse.typing import NonNegativeFloat, OpenUnitInterval, PositiveInt
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from robustlit.attacks.eval_mode import autocast_precision
from robustlit.callbacks.certification_report import certified_accuracy_figure, print_certification_table
from robustlit.callbacks.evaluation import EvaluationCallback, Progress, Stage, rich_progress_of
from robustlit.certify.report import (
    CertificationRow,
    CertificationWriter,
    average_certified_radius,
    certified_accuracy,
    read_rows,
    remove_log,
    verify_log,
)
from robustlit.certify.sigma import ConstantSigma, SigmaFunction
from robustlit.certify.smoothing import ABSTAIN, CertifyResult, NonFiniteLogitsError, SmoothedClassifier
from robustlit.utils.atomic import atomic_target, write_text_atomically
from robustlit.utils.config_types import FinitePositiveFloat
from robustlit.utils.distributed import gather_objects, world
from robustlit.utils.file_digest import write_digest
from robustlit.utils.fingerprint import model_fingerprint
from robustlit.utils.finite import NonFiniteOutputError

DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def write_sidecar(path: Path, meta: dict[str, Any]) -> None:
    """The settings sidecar of a certification log, with the SHA-256 of its content."""
    body = json.dumps(meta, sort_keys=True)
    write_text_atomically(path, json.dumps({**meta, "sha256": hashlib.sha256(body.encode()).hexdigest()}, indent=2))


def read_sidecar(path: Path, owner: str, quiet: bool = False) -> dict[str, Any] | None:
    """The settings stored in a sidecar, or None (said, and the file deleted, unless ``quiet``) when it cannot be
    read, fails its SHA-256 or has none."""
    try:
        stored = json.loads(path.read_text())
        checksum = stored.pop("sha256")
        valid = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest() == checksum
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        stored, valid = None, False
    if valid:
        return stored
    if not quiet:
        print(
            f"{owner}: {path} is discarded (unreadable, without a checksum or not matching it), and with it the rows "
            "it describes; they are certified again.",
            flush=True,
        )
        path.unlink(missing_ok=True)
    return None


def _row(idx: int, label: int, result: CertifyResult, seconds: float) -> CertificationRow:
    """The TSV row of one certificate; an abstention (predict -1) is never correct."""
    correct = int(result.prediction == label and result.prediction != ABSTAIN)
    return CertificationRow(idx, label, result.prediction, result.radius, correct, seconds)


def _no_barrier() -> None:
    if world()[1] > 1:
        raise RuntimeError("Certification.certify_dataset under DDP needs barrier=trainer.strategy.barrier")


class Certification(EvaluationCallback):
    """Certify the Gaussian-smoothed model with Cohen et al.'s CERTIFY on validation/test examples.

    Each selected example (dataset indices ``0, skip, 2 skip, ...``, the first ``num_examples`` of them)
    gets a prediction (or abstention) and a certified l2 radius in pixel units from n0 selection and n
    estimation samples at level 1 - failure_prob (Clopper-Pearson). Constant sigma uses ``sigma Phi^-1(p_A)``;
    an input-dependent sigma(x) uses Suekenik et al.'s radius (never the constant-sigma formula).
    Logged: ``<stage>/certified_acc/r_<radius>`` (correct and radius >= r; abstentions count as wrong),
    ``<stage>/average_certified_radius`` and ``<stage>/abstain_rate``; sigma, n0, n and failure_prob are in the
    table title, the TensorBoard text ``<stage>/certification_settings`` and the JSON summary
    ``certification_<stage>.json`` in the log dir. The certified-accuracy-vs-radius curve goes to
    TensorBoard (``<stage>/certified_accuracy_curve``).

    Rows ``idx label predict radius correct time`` (the TSV of Cohen et al.'s ``certify.py``) are
    appended and flushed as they finish, into a file named after the stage, sigma, n0, n, failure_prob and a hash
    of the model weights and sigma function. Running the same command again skips the examples already
    in the file: every example's noise is seeded by its dataset index, so an interrupted-and-resumed run
    gives the rows of an uninterrupted one. Under DDP the examples are dealt round-robin to the ranks
    (no padding), each rank appends to ``<file>.part<rank>``, and rank 0 merges all rows, sorted by idx,
    into the file at the end: a 2-process run reports exactly the 1-process figures.

    Args:
        n0: selection samples per example (100 in Cohen et al.).
        n: estimation samples per example (100,000 in Cohen et al.).
        failure_prob: failure probability of each certificate (Cohen et al.'s alpha).
        batch_size: noise samples per forward pass.
        num_examples: how many examples to certify (``None``: all selected by ``skip``).
        skip: certify every ``skip``-th example (Cohen et al.: 20 on CIFAR-10).
        radii: radii at which certified accuracy is logged.
        stages: run at ``validate`` (including validation during fit) and/or ``test``.
        every_n_epochs: frequency during fit (the last epoch always runs).
        sigma: noise level for a model without its own sigma function (e.g. ``Standard``, ``TRADES``); a
            :class:`GaussianSmoothing` model is certified with its own ``sigma_fn`` unless
            ``override_model_sigma`` is true.
        override_model_sigma: certify with ``sigma`` even when the model has its own sigma function.
        output_dir: directory of the TSV files; default ``<run of --ckpt_path>/certification`` when a
            checkpoint is given and lies under the Trainer's ``default_root_dir`` (so that rerunning the same
            command resumes), ``<default_root_dir>/certification`` for a checkpoint from elsewhere (a run writes
            nothing outside its ``default_root_dir``), else ``<log dir>/certification``.
        file_name: TSV file name instead of the automatic one (a sidecar ``.json`` guards against resuming
            it with another model or other settings).
        resume: keep and skip finished rows; ``False`` deletes the file first.
        seed: base seed of the noise (example ``idx`` uses ``seed + 1_000_003 * idx``).
        radius_kwargs: grid sizes for the input-dependent radius (``input_dependent_radius``).
        print_table: print a rich table at the end (rank 0).
        examples_per_pass: how many examples share forward passes (``SmoothedClassifier.certify_many``:
            their noise chunks are packed up to ``batch_size`` samples per pass, each example keeping its own
            seeded noise, so the rows are those of one-at-a-time certification). ``None`` (default):
            ``max(1, batch_size // (n0 + n))``, i.e. packing only when several examples' samples fit in
            one batch. The ``time`` column is then the group's time divided among its examples.
        precision: ``fp32`` (default; autocast is switched off, whatever the Trainer's precision) or
            ``bf16`` (bfloat16 autocast: faster on tensor cores, but the certificates then hold for the
            bfloat16 classifier, which the TSV states in a ``#`` line above its header; docs/speed.md).
    """

    report_name = "certification"
    title = "randomized-smoothing certification"
    default_stages = ("test",)

    def __init__(
        self,
        n0: PositiveInt = 100,
        n: PositiveInt = 10_000,
        failure_prob: OpenUnitInterval = 0.001,
        batch_size: PositiveInt = 1000,
        num_examples: PositiveInt | None = 500,
        skip: PositiveInt = 1,
        radii: list[NonNegativeFloat] | None = None,
        stages: list[Stage] | None = None,
        every_n_epochs: PositiveInt = 1,
        sigma: SigmaFunction | FinitePositiveFloat | None = None,
        override_model_sigma: bool = False,
        output_dir: str | None = None,
        file_name: str | None = None,
        resume: bool = True,
        seed: int = 0,
        radius_kwargs: dict[str, Any] | None = None,
        print_table: bool = True,
        examples_per_pass: PositiveInt | None = None,
        precision: Literal["fp32", "bf16"] = "fp32",
    ) -> None:
        for name, value in (("n0", n0), ("n", n), ("batch_size", batch_size), ("skip", skip)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"Certification: {name} must be a positive integer; got {value!r}")
        if num_examples is not None and num_examples < 1:
            raise ValueError(f"Certification: num_examples must be >= 1 or None (all); got {num_examples}")
        if not 0.0 < failure_prob < 1.0:
            raise ValueError(f"Certification: failure_prob must lie in (0, 1), e.g. 0.001; got {failure_prob}")
        radii = list(DEFAULT_RADII if radii is None else radii)
        if not radii or any(r < 0 for r in radii):
            raise ValueError(f"Certification: radii must be a non-empty list of values >= 0; got {radii}")
        if sigma is not None and not isinstance(sigma, SigmaFunction) and not 0 < sigma < float("inf"):
            raise ValueError(f"Certification: sigma must be positive and finite (pixel units); got {sigma}")
        if examples_per_pass is not None and (isinstance(examples_per_pass, bool) or examples_per_pass < 1):
            raise ValueError(
                f"Certification: examples_per_pass must be a positive integer or None; got {examples_per_pass!r}"
            )
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"Certification: precision must be 'fp32' or 'bf16'; got {precision!r}")
        if override_model_sigma and sigma is None:
            raise ValueError("Certification: override_model_sigma=true needs a sigma to override with")
        super().__init__(num_examples, int(batch_size), every_n_epochs, stages, seed, None, print_table)
        self.n0, self.n, self.failure_prob = int(n0), int(n), float(failure_prob)
        self.skip, self.radii = int(skip), sorted(radii)
        self.sigma_fn = sigma if isinstance(sigma, SigmaFunction) or sigma is None else ConstantSigma(sigma)
        self.override_model_sigma = override_model_sigma
        self.output_dir = Path(output_dir) if output_dir else None
        self.file_name, self.resume = file_name, resume
        self.radius_kwargs = dict(radius_kwargs or {})
        self.examples_per_pass, self.precision = examples_per_pass, precision

    # ---- certification ---------------------------------------------------------------------------
    def sigma_for(self, pl_module: nn.Module) -> SigmaFunction:
        """The model's own ``sigma_fn`` (GaussianSmoothing) unless overridden, else ``sigma``."""
        own = getattr(pl_module, "sigma_fn", None)
        if isinstance(own, SigmaFunction) and not self.override_model_sigma:
            return own
        if self.sigma_fn is None:
            raise ValueError(
                f"Certification: {type(pl_module).__name__} has no sigma function (sigma_fn). Train with "
                "robustlit.methods.gaussian_smoothing.GaussianSmoothing, or give the callback a noise level, "
                "e.g. `init_args: {sigma: 0.25}`."
            )
        return self.sigma_fn

    def selected_indices(self, dataset_size: int) -> list[int]:
        """Dataset indices to certify: every ``skip``-th, the first ``num_examples`` of them, within the Trainer's
        ``limit_*_batches`` counted in examples (one under ``fast_dev_run``)."""
        indices = list(range(0, dataset_size, self.skip))
        indices = indices if self.num_examples is None else indices[: self.num_examples]
        return indices[: self.within_limit(len(indices), 1)]  # a "batch" of certification is one example

    def settings(self, sigma: SigmaFunction) -> dict[str, Any]:
        """Everything that determines the certificates, as logged and stored next to the TSV."""
        return {
            "sigma": f"{type(sigma).__name__}({sigma.extra_repr()})",
            "semi_elasticity": float(sigma.semi_elasticity),
            "radius": "input_dependent" if sigma.semi_elasticity > 0 else "cohen",
            "n0": self.n0,
            "n": self.n,
            "failure_prob": self.failure_prob,
            "seed": self.seed,
            "radius_kwargs": self.radius_kwargs,
            # only when not float32: TSVs (and their sidecars) written before this option keep resuming
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }

    def group_size(self) -> int:
        """Examples certified together (``examples_per_pass``, else as many as fit in one batch of samples)."""
        if self.examples_per_pass is not None:
            return int(self.examples_per_pass)
        return max(1, self.batch_size // (self.n0 + self.n))

    def tsv_preamble(self) -> list[str]:
        """``#`` lines above the TSV header: none in float32 (Cohen et al.'s format), a warning in bf16."""
        if self.precision == "fp32":
            return []
        return [
            "precision: bf16 -- the base classifier ran under bfloat16 autocast; these certificates hold for",
            "the bfloat16 classifier, not for its float32 weights (robustlit Certification, docs/speed.md)",
        ]

    def default_file_name(self, stage: str, model: nn.Module, sigma: SigmaFunction) -> str:
        """``certify_<stage>_<sigma>_n0-<n0>_n-<n>_p-<failure_prob>_<hash of weights, sigma and settings>.tsv``."""
        key = json.dumps(self.settings(sigma), sort_keys=True) + model_fingerprint(model) + model_fingerprint(sigma)
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        tag = f"sigma{sigma.sigma:g}" if isinstance(sigma, ConstantSigma) else type(sigma).__name__
        return f"certify_{stage}_{tag}_n0-{self.n0}_n-{self.n}_p-{self.failure_prob:g}_{digest}.tsv"

    def certify_dataset(
        self,
        model: nn.Module,
        sigma: SigmaFunction,
        dataset: Dataset,
        bounds: tuple[float, float] | None,
        path: str | Path,
        barrier: Callable[[], None] = _no_barrier,
    ) -> dict[str, Any]:
        """Certify the selected examples of ``dataset`` (finished rows in ``path`` are kept and skipped).

        Collective under DDP (call it on every rank, with ``barrier=trainer.strategy.barrier``). Returns the
        summary (identical on all ranks).
        """
        path = Path(path)
        indices = self.selected_indices(len(dataset))
        if not indices:
            raise ValueError("Certification: the evaluation dataset is empty")
        finished = self._prepare_log(path, sigma, model, barrier)
        rank, size = world()
        todo = [i for i in indices if i not in finished]
        smoothed = SmoothedClassifier(model, sigma, input_bounds=bounds, radius_kwargs=self.radius_kwargs)
        own_path = path if size == 1 else path.with_name(f"{path.name}.part{rank}")
        new: dict[int, CertificationRow] = {}
        mine = todo[rank::size]
        progress = Progress(type(self).__name__, len(mine), len(todo), rich=rich_progress_of(self._trainer))
        if len(todo) < len(indices) and rank == 0:
            print(
                f"{type(self).__name__}: reused {len(indices) - len(todo)} of {len(indices)} rows of {path}", flush=True
            )
        try:
            with CertificationWriter(own_path, resume=True, preamble=self.tsv_preamble()) as writer:
                step = self.group_size()
                for start in range(0, len(mine), step):
                    for row in self._certify_group(smoothed, dataset, mine[start : start + step]):
                        writer.append_row(row)
                        new[row.idx] = CertificationRow.from_line(row.to_line())  # as stored: resumed runs agree
                        progress.advance(1)
        finally:
            progress.close()
        for part in gather_objects(new):
            finished.update(part)
        self._merge_log(path, finished, barrier)
        rows = [finished[i] for i in indices]
        summary = self._summarise(rows, sigma)
        summary.update(file=str(path), computed=len(todo), resumed=len(indices) - len(todo))
        return summary

    def _example(self, dataset: Dataset, idx: int) -> tuple[torch.Tensor, int]:
        item = dataset[idx]
        x, label = torch.as_tensor(item[0]), int(item[1])
        num_classes = self._num_classes
        if num_classes is not None and not 0 <= label < num_classes:
            raise ValueError(
                f"Certification: the label of dataset index {idx} is {label}, outside 0..{num_classes - 1}. Check the "
                "DataModule's num_classes and its label encoding."
            )
        return x, label

    def _generator(self, smoothed: SmoothedClassifier, idx: int) -> torch.Generator:
        """Example ``idx``'s own noise stream: the same whether it is certified alone, in a group or resumed."""
        device = smoothed.device or torch.device("cpu")
        return torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * idx)

    def _certify_group(
        self, smoothed: SmoothedClassifier, dataset: Dataset, group: list[int]
    ) -> Iterator[CertificationRow]:
        """Rows of ``group``, its examples' noise packed into shared forward passes (``certify_many``).

        When the packed pass fails (a NaN logit or input), the group is certified again one example at a time,
        so that the rows before the faulty example are kept and the error names it.
        """
        if len(group) == 1:
            yield self._certify_one(smoothed, dataset, group[0])
            return
        examples = [self._example(dataset, idx) for idx in group]
        start = time.perf_counter()
        try:
            with autocast_precision(self.precision, smoothed.device or "cpu"):
                results = smoothed.certify_many(
                    [x for x, _ in examples],
                    self.n0,
                    self.n,
                    self.failure_prob,
                    self.batch_size,
                    [self._generator(smoothed, idx) for idx in group],
                )
        except (NonFiniteLogitsError, ValueError):
            for idx in group:
                yield self._certify_one(smoothed, dataset, idx)
            return
        elapsed = (time.perf_counter() - start) / len(group)
        for idx, (_, label), result in zip(group, examples, results, strict=True):
            yield _row(idx, label, result, elapsed)

    def _certify_one(self, smoothed: SmoothedClassifier, dataset: Dataset, idx: int) -> CertificationRow:
        x, label = self._example(dataset, idx)
        generator = self._generator(smoothed, idx)
        start = time.perf_counter()
        try:
            with autocast_precision(self.precision, smoothed.device or "cpu"):
                result = smoothed.certify(x, self.n0, self.n, self.failure_prob, self.batch_size, generator)
        except NonFiniteLogitsError as error:
            raise NonFiniteOutputError(
                f"Certification: dataset index {idx} (label {label}): {error} No certificate is written for it; the "
                "rows certified before it are kept in the TSV."
            ) from error
        except ValueError as error:  # a NaN or out-of-range input: name the example
            raise ValueError(f"Certification: dataset index {idx}: {error}") from error
        return _row(idx, label, result, time.perf_counter() - start)

    def _prepare_log(
        self, path: Path, sigma: SigmaFunction, model: nn.Module, barrier: Callable[[], None]
    ) -> dict[int, CertificationRow]:
        """Rank 0 starts or checks the sidecar and the logs' checksums (a file that fails is named and discarded,
        its examples certified again); then every rank reads all finished rows (log and parts)."""
        rank, _ = world()
        meta_path = path.with_name(path.name + ".json")
        meta = {
            **self.settings(sigma),
            "model_fingerprint": model_fingerprint(model),
            "sigma_fingerprint": model_fingerprint(sigma),
        }
        name = type(self).__name__
        if rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            logs = [path, *self._parts(path)]
            if not self.resume:
                meta_path.unlink(missing_ok=True)
                for old in logs:
                    remove_log(old)
            elif meta_path.exists() and read_sidecar(meta_path, name) is None:
                for old in logs:  # rows whose settings cannot be established are not reused
                    remove_log(old)
            for log in logs:
                verify_log(log, name)
            if not meta_path.exists():
                write_sidecar(meta_path, meta)
        barrier()
        stored = read_sidecar(meta_path, name, quiet=True)
        if stored != meta:
            raise ValueError(
                f"Certification: {path} was written for other settings or another model ({meta_path}: "
                f"{stored}; now {meta}). Use another file_name, or resume: false to start it again."
            )
        finished: dict[int, CertificationRow] = {}
        for log in [p for p in [path, *self._parts(path)] if p.exists()]:
            finished.update(read_rows(log))
        barrier()  # nobody appends before every rank has read the same finished set
        return finished

    @staticmethod
    def _parts(path: Path) -> list[Path]:
        return sorted(p for p in path.parent.glob(f"{path.name}.part*") if p.suffix != ".sha256")

    def _merge_log(self, path: Path, rows: dict[int, CertificationRow], barrier: Callable[[], None]) -> None:
        """Rank 0 rewrites the log with every row sorted by idx (atomically, then its checksum) and removes the
        parts."""
        barrier()
        if world()[0] == 0:
            # a temporary name unique to this process: two jobs sharing the folder never write the same file
            with atomic_target(path) as tmp:
                with CertificationWriter(tmp, resume=False, preamble=self.tsv_preamble(), digest=False) as writer:
                    for idx in sorted(rows):
                        writer.append_row(rows[idx])
                content = tmp.read_bytes()
            write_digest(path, hashlib.sha256(content).hexdigest(), len(content))
            for part in self._parts(path):
                remove_log(part)
        barrier()

    def _summarise(self, rows: list[CertificationRow], sigma: SigmaFunction) -> dict[str, Any]:
        radius = np.array([r.radius for r in rows], dtype=np.float64)
        correct = np.array([r.correct for r in rows], dtype=bool)
        return {
            "num_examples": len(rows),
            "settings": self.settings(sigma),
            "certified_acc": dict(zip(self.radii, certified_accuracy(radius, correct, self.radii), strict=True)),
            "average_certified_radius": average_certified_radius(radius, correct),
            "abstain_rate": float(np.mean([r.predict == ABSTAIN for r in rows])),
            "radius": radius.tolist(),
            "correct": correct.tolist(),
        }

    # ---- logging ---------------------------------------------------------------------------------
    def _output_path(
        self, trainer: pl.Trainer, log_dir: str | None, stage: str, model: nn.Module, sigma: SigmaFunction
    ) -> Path:
        root = Path(trainer.default_root_dir).resolve()
        if self.output_dir is not None:
            directory = self.output_dir
        elif trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
            # the checkpoint's run folder, so that rerunning the same command resumes; but never outside the folder
            # this run writes to (default_root_dir): a checkpoint from elsewhere gets <default_root_dir>/certification
            run = Path(trainer.ckpt_path).resolve().parent.parent
            directory = (run if run.is_relative_to(root) else root) / "certification"
        else:
            directory = Path(log_dir or root) / "certification"
        return directory / (self.file_name or self.default_file_name(stage, model, sigma))

    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        """Certification resumes from its own TSV (one row per example) instead of the per-batch cache."""
        model, sigma = pl_module.classifier, self.sigma_for(pl_module)
        path = self._output_path(trainer, trainer.log_dir, stage, model, sigma)
        bounds = getattr(pl_module, "bounds", (0.0, 1.0))
        return self.certify_dataset(model, sigma, dataset, bounds, path, barrier=trainer.strategy.barrier)

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        log = {f"{stage}/certified_acc/r_{r:g}": acc for r, acc in summary["certified_acc"].items()}
        log[f"{stage}/average_certified_radius"] = summary["average_certified_radius"]
        log[f"{stage}/abstain_rate"] = summary["abstain_rate"]
        return log

    def json_summary(self, summary: dict) -> dict:
        return {k: v for k, v in summary.items() if k not in ("radius", "correct")}

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        figure = certified_accuracy_figure(summary["radius"], summary["correct"], summary["settings"])
        data = {"radius": summary["radius"], "correct": summary["correct"], "settings": summary["settings"]}
        return {"certified_accuracy_curve": (figure, data)}

    def texts(self, summary: dict, stage: str) -> dict[str, str]:
        return {"certification_settings": json.dumps({**summary["settings"], "file": summary["file"]}, indent=1)}

    def print_summary(self, summary: dict, title: str) -> None:
        print_certification_table(summary, title=title)

    def state_fields(self) -> dict[str, Any]:
        sigma = None if self.sigma_fn is None else self.sigma_fn.extra_repr()
        return {
            "stages": sorted(self.stages),
            "n0": self.n0,
            "n": self.n,
            "failure_prob": self.failure_prob,
            "skip": self.skip,
            "sigma": sigma,
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }
