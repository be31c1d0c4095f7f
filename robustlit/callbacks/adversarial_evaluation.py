"""Adversarial evaluation as a Lightning callback (docs/contracts.md: eval-mode attacks, gradients at
evaluation, honest metric names, exact DDP counts)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Dataset

from robustlit.attacks.ball import Bounds
from robustlit.attacks.eps import Eps, check_eps
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.audit import AuditReport, robustness_curve_figure
from robustlit.callbacks.attack_audit import audit_metrics, audit_spec, audit_targets, first_examples
from robustlit.callbacks.evaluation import EvaluationCallback, Stage
from robustlit.callbacks.per_class_figure import per_class_figure
from robustlit.callbacks.robustness_curves import CurveAttacks, summarise_curves
from robustlit.callbacks.summary_table import print_robustness_table, robustness_line
from robustlit.metrics.worst_class import (
    per_class_accuracy,
    worst_class_accuracy,
    worst_fraction_class_accuracy,
)
from robustlit.utils import distributed


def spec_record(spec: AttackSpec) -> dict[str, Any]:
    """An attack's fields for the JSON summary: ``eps`` as a number and ``eps_text`` as written (``8/255``)."""
    return {**asdict(spec), "eps": float(spec.eps), "eps_text": str(Eps(spec.eps))}


def per_class_figure_of(summary: dict, context: str) -> tuple[Figure, dict]:
    """The per-class figure of a summary (clean bar, every attack, n per class, UNRELIABLE marked) and its data."""
    per_class = {name: res["per_class_robust_acc"] for name, res in summary["attacks"].items()}
    unreliable = [name for name, res in summary["attacks"].items() if res.get("unreliable")]
    clean, counts = summary.get("per_class_clean_acc"), summary.get("per_class_count")
    title = f"{context}: accuracy per class ({summary['num_examples']} examples)"
    figure = per_class_figure(per_class, title, clean=clean, counts=counts, unreliable=unreliable)
    data = {"clean": clean, "count": counts, "robust": per_class, "unreliable": unreliable}
    return figure, data


def headline_accuracy(summary: dict) -> float:
    """The number to report from a summary: standard AutoAttack's when it ran alone, else the per-example worst
    case over every attack (never above AutoAttack's)."""
    return summary["attacks"]["ensemble"]["robust_acc"]


def headline_point(summary: dict) -> dict | None:
    """Standard AutoAttack's (norm, eps, robust accuracy) for the robustness curve's marker; None if it did not run."""
    for res in summary["attacks"].values():
        spec = res.get("spec") or {}
        if spec.get("name") == "autoattack":
            label = f"AutoAttack {res['robust_acc']:.1%} (headline)"
            return {"norm": spec["norm"], "eps": float(spec["eps"]), "accuracy": res["robust_acc"], "label": label}
    return None


class AdversarialEvaluation(EvaluationCallback):
    """Run attacks on the first ``num_examples`` validation/test examples and log robust accuracy.

    For each attack it logs ``<stage>/robust_acc/<name><steps>_<norm>_<eps>`` (an example counts as
    robust if it is classified correctly clean *and* after the attack), the worst-class and the
    worst-``worst_fraction`` class robust accuracy, and
    ``<stage>/robust_acc/ensemble``: per example, robust against *every* configured attack. Clean
    accuracy on the same examples is ``<stage>/attacked_subset/clean_acc``. Per-class robust accuracies
    are in ``adversarial_evaluation_<stage>.json`` and the figure ``per_class_robust_acc_<stage>.png``.

    Examples are dealt to DDP ranks in whole fixed batches without padding and gathered, and each
    batch's randomness is seeded by its global index: a multi-process run reports exactly the
    single-process numbers. Attacks skip the sanity check and run every ``every_n_epochs`` epochs
    during ``fit``. With ``cache_dir`` set, finished batches are stored (keyed by a hash of the model
    weights, the attacks and the batch) and skipped when the same evaluation is run again.

    Args:
        attacks: the attacks to run (each validated at parse time).
        num_examples: how many evaluation examples to attack (``None``: all).
        batch_size: attack batch size.
        every_n_epochs: frequency during ``fit``.
        stages: run at ``validate`` (incl. validation during fit) and/or ``test``.
        seed: base seed of the attacks' randomness.
        worst_fraction: fraction of classes averaged in the worst-class metric (0.3 = RA-Tail-30).
        cache_dir: directory for resumable per-batch results (``None``: no cache).
        print_table: print a rich summary table at the end of fit/validate/test (rank 0).
        num_workers: processes reading the evaluation batches (0: in the main process).
        audit_examples: run the attack-failure audit (Pintor et al. 2022; docs/audit.md) on the first
            ``audit_examples`` evaluated examples for each audited attack (0: off). Every rank audits the
            same examples from ``seed``. A robust accuracy an indicator flags is marked UNRELIABLE in the
            table (with the fix to try) and ``unreliable: true`` in the JSON (with the report under
            ``audit``); the loggers get ``<stage>/audit/<attack>/reliable`` and the indicator flags.
        audit_attacks: metric names of the attacks to audit (``None``: every attack budgeted in steps:
            PGD, APGD, FGSM, FAB, CW; AutoAttack and Square only when named).
        audit_square_queries: queries of the audit's black-box check (Square on the examples the audited
            attack declared robust; 0 skips it).
        curve_eps: radii of the robustness curves (accuracy against eps; ``None``: no curve; numbers or
            fractions such as ``8/255``), written as
            ``robustness_curve_<stage>.png/.json`` and sent to loggers with an image API.
        curve_attacks: the attacks rerun at every radius of ``curve_eps`` (their ``eps`` is replaced;
            ``None``: the configured attacks). Per example the worst case over the radii up to eps is kept,
            so each curve is non-increasing.
    """

    report_name = "adversarial_evaluation"
    title = "adversarial evaluation"
    needs_gradients = True

    def __init__(
        self,
        attacks: list[AttackSpec],
        num_examples: PositiveInt | None = 1000,
        batch_size: PositiveInt = 256,
        every_n_epochs: PositiveInt = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        worst_fraction: float = 0.3,
        cache_dir: str | None = None,
        print_table: bool = True,
        num_workers: NonNegativeInt = 0,
        audit_examples: NonNegativeInt = 0,
        audit_attacks: list[str] | None = None,
        audit_square_queries: NonNegativeInt = 1000,
        curve_eps: list[Eps] | None = None,
        curve_attacks: list[AttackSpec] | None = None,
    ) -> None:
        if not attacks:
            raise ValueError("AdversarialEvaluation needs at least one attack")
        names = [a.metric_name for a in attacks]
        if len(set(names)) != len(names):
            raise ValueError(f"AdversarialEvaluation: duplicate attacks {names}")
        if not 0 < worst_fraction <= 1:
            raise ValueError(f"worst_fraction must lie in (0, 1]; got {worst_fraction}")
        super().__init__(num_examples, batch_size, every_n_epochs, stages, seed, cache_dir, print_table, num_workers)
        self.attacks = list(attacks)
        self.worst_fraction = worst_fraction
        self.audit_examples, self.audit_square_queries = audit_examples, audit_square_queries
        self.audited = audit_targets(self.attacks, audit_attacks) if audit_examples > 0 else []
        if curve_eps is not None and not curve_eps:
            raise ValueError("curve_eps must be a non-empty list of radii (or null for no curve)")
        self.curve_eps = sorted(Eps(e) for e in curve_eps) if curve_eps is not None else None
        self.curve_attacks = list(curve_attacks) if curve_attacks is not None else list(self.attacks)
        #: per-example columns of the last :meth:`evaluate` (``label``, ``index``, ``clean``, ``robust`` (N, attacks)),
        #: for combining evaluations per example (e.g. a worst case over attacks run on different subsets)
        self.last_columns: dict[str, Tensor] | None = None
        for spec in self.curve_attacks:
            for eps in self.curve_eps or []:
                check_eps(eps, spec.norm, where="AdversarialEvaluation.curve_eps")

    def check_radii(self, dataset: Dataset, bounds: Bounds) -> None:
        """Hold every radius to its norm's range for this data (L2: sqrt(d) * width; docs/evaluation.md)."""
        shape = tuple(dataset[0][0].shape) if len(dataset) else None  # type: ignore[arg-type]
        for spec in self.attacks:
            check_eps(spec.eps, spec.norm, bounds, shape, where=f"AdversarialEvaluation attack {spec.metric_name}")
        for spec in self.curve_attacks if self.curve_eps is not None else []:
            for eps in self.curve_eps:  # type: ignore[union-attr]
                check_eps(eps, spec.norm, bounds, shape, where="AdversarialEvaluation.curve_eps")

    def evaluate(self, model: torch.nn.Module, dataset: Dataset, num_classes: int, bounds, device) -> dict:  # noqa: ANN001
        """Attack the first ``num_examples`` of ``dataset``; returns the gathered summary (all ranks).

        The per-example columns stay in :attr:`last_columns` (``label``, ``clean`` (N,), ``robust`` (N, attacks), in
        dataset order), so that a worst case can be taken across evaluations of different sizes, e.g. PGD on all
        test images and AutoAttack on the first 1,000 (examples/mnist_fast_at_table.py)."""
        self.check_radii(dataset, bounds)
        attacks = [build_attack(s, model, num_classes, bounds, self.batch_size) for s in self.attacks]
        curves = None
        if self.curve_eps is not None:
            curves = CurveAttacks(self.curve_attacks, self.curve_eps, model, num_classes, bounds, self.batch_size)

        def batch(x: Tensor, y: Tensor, batch_id: int) -> dict[str, Tensor]:
            with torch.no_grad():
                clean = model(x).argmax(dim=1) == y
            robust = []
            for k, attack in enumerate(attacks):
                with self.seeded(batch_id, k, x.device):
                    x_adv = attack(x, y)
                with torch.no_grad():
                    robust.append(clean & (model(x_adv).argmax(dim=1) == y))
            row = {"clean": clean, "robust": torch.stack(robust, dim=1)}
            if curves is not None:
                row["curve_broken"] = curves.broken(
                    x, y, lambda part: self.seeded(batch_id, len(attacks) + part, x.device)
                )
            return row

        tag = "-".join(a.metric_name for a in self.attacks)
        if self.curve_eps is not None:  # a short, stable key of the curve's attacks and radii
            curve_key = repr(([a.metric_name for a in self.curve_attacks], [float(e) for e in self.curve_eps])).encode()
            tag += "-curve" + hashlib.sha256(curve_key).hexdigest()[:12]
        columns = self.collect(dataset, batch, device, bounds, cache_model=model, cache_tag=tag)
        self.last_columns = columns
        summary = self.summarise(columns, num_classes)
        summary["dataset_size"] = len(dataset)  # type: ignore[arg-type]  (the protocol's example count: results/)
        if curves is not None:
            summary["curves"] = summarise_curves(
                self.curve_attacks, self.curve_eps, columns["clean"], columns["curve_broken"]
            )
        k = min(self.audit_examples, summary["num_examples"])
        if self.audited and k > 0:
            x, y = first_examples(dataset, k, device)
            if distributed.world()[0] == 0:
                names = ", ".join(spec.metric_name for spec in self.audited)
                print(f"{type(self).__name__}: auditing {names} on {k} examples", flush=True)
            for spec in self.audited:
                args = (model, x, y, num_classes, bounds, self.batch_size, self.audit_square_queries, self.seed)
                report = audit_spec(spec, *args)
                summary["attacks"][spec.metric_name].update(audit=report.to_dict(), unreliable=not report.reliable)
        return summary

    def summarise(self, columns: dict[str, Tensor], num_classes: int) -> dict:
        """Accuracies of the gathered columns ``label``, ``clean`` and ``robust`` (one column per attack)."""
        label, robust = columns["label"], columns["robust"]
        summary = {
            "num_examples": int(label.numel()),
            "clean_acc": columns["clean"].float().mean().item(),
            "worst_fraction": self.worst_fraction,
            "per_class_clean_acc": per_class_accuracy(columns["clean"], label, num_classes).tolist(),
            "per_class_count": torch.bincount(label.long(), minlength=num_classes).tolist(),
            "attacks": {},
        }
        named = [(s.metric_name, robust[:, k], spec_record(s)) for k, s in enumerate(self.attacks)]
        named.append(("ensemble", robust.all(dim=1), {"name": "ensemble", "of": [s.metric_name for s in self.attacks]}))
        for name, ok, spec in named:
            per_class = per_class_accuracy(ok, label, num_classes)
            summary["attacks"][name] = {
                "spec": spec,
                "robust_acc": ok.float().mean().item(),
                "worst_class_robust_acc": worst_class_accuracy(per_class).item(),
                "worst_fraction_robust_acc": worst_fraction_class_accuracy(per_class, self.worst_fraction).item(),
                "per_class_robust_acc": per_class.tolist(),
            }
        return summary

    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        return self.evaluate(pl_module.classifier, dataset, pl_module.num_classes, pl_module.bounds, pl_module.device)

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        tail = f"worst{round(100 * self.worst_fraction)}pct_class_robust_acc"
        log = {f"{stage}/attacked_subset/clean_acc": summary["clean_acc"]}
        for name, res in summary["attacks"].items():
            log[f"{stage}/robust_acc/{name}"] = res["robust_acc"]
            log[f"{stage}/worst_class_robust_acc/{name}"] = res["worst_class_robust_acc"]
            log[f"{stage}/{tail}/{name}"] = res["worst_fraction_robust_acc"]
        # per-class accuracies go to the JSON and the per-class figure, not to the results table
        return log

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        out = {"per_class_robust_acc": per_class_figure_of(summary, f"{stage}, epoch {epoch}")}
        if summary.get("curves"):
            title = f"{stage}: accuracy against eps ({summary['num_examples']} examples, epoch {epoch})"
            figure = robustness_curve_figure(summary["curves"], title, headline=headline_point(summary))
            out["robustness_curve"] = (figure, summary["curves"])
        return out

    def audit_reports(self, summary: dict) -> dict[str, AuditReport]:
        """The audit reports of a summary, by attack (empty when no attack was audited)."""
        return {n: AuditReport.from_dict(r["audit"]) for n, r in summary["attacks"].items() if r.get("audit")}

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, dataset: Dataset) -> None:
        """As the base class; the audit's numbers go to the loggers directly (rank 0), not to the results table."""
        super().run(trainer, pl_module, stage, dataset)
        summary = self.results[stage]
        reports = self.audit_reports(summary)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if reports:
                    logger.log_metrics(audit_metrics(reports, stage), step=trainer.global_step)
                if isinstance(logger, TensorBoardLogger):  # the hparams tab's metric: the headline robust accuracy
                    logger.log_metrics({"hp_metric": headline_accuracy(summary)}, step=trainer.global_step)

    def print_summary(self, summary: dict, title: str) -> None:
        # in a log file, the validation table (PGD to choose the checkpoint) is one line; the test table stays whole
        if title.startswith("val") and not sys.stdout.isatty():
            print(robustness_line(summary, title), flush=True)
        else:
            print_robustness_table(summary, title=title)

    def state_fields(self) -> dict:
        return {"stages": sorted(self.stages), "attacks": [a.metric_name for a in self.attacks]}
