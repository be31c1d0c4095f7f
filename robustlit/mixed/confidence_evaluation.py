"""The confidence report of a robust model as a Lightning callback (docs/mixed_classifier.md, "The confidence report").

    robustlit test --config configs/digits_tradeoff/pgd_at.yaml --config configs/eval/confidence_report.yaml \\
        --ckpt_path checkpoints/tradeoff_pgd_at.ckpt

Per example: h's clean logits, its worst-case margin over every iterate of APGD-CE and APGD-T
(:func:`robustlit.mixed.confidence.worst_case_margins`) and, when a standard model is known, g's clean logits;
then :func:`robustlit.mixed.confidence.summarise_confidence`: the two margin groups, the separation AUC, the
accuracy-robustness curve over alpha predicted for a fully fooled g and the recommended alpha. Written as
``confidence_report_<stage>.json``, the figure ``confidence_figure_<stage>.png`` and a rich table; examples dealt
to DDP ranks in whole seeded batches like every :class:`~robustlit.callbacks.evaluation.EvaluationCallback`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveFloat, PositiveInt
from matplotlib.figure import Figure
from rich.console import Console
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustlit.attacks.threat_model import Norm
from robustlit.callbacks.evaluation import EvaluationCallback, Stage
from robustlit.checkpoint import load_classifier
from robustlit.mixed.confidence import DEFAULT_ALPHAS, summarise_confidence, worst_case_margins
from robustlit.mixed.confidence_figure import confidence_figure, confidence_table
from robustlit.utils.fingerprint import model_fingerprint

__all__ = ["ConfidenceReport", "robust_and_standard_of"]


def robust_and_standard_of(pl_module: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """``(h, g)``: the two bases of a mixed-classifier module (``.mixture``), else the module's classifier and
    None."""
    mixture = getattr(pl_module, "mixture", None)
    if mixture is not None and hasattr(mixture, "robust") and hasattr(mixture, "standard"):
        return mixture.robust, mixture.standard
    return getattr(pl_module, "classifier", pl_module), None


class ConfidenceReport(EvaluationCallback):
    """Whether mixing the evaluated robust model h with a standard model g can pay off, and at which alpha.

    Bai et al. (2023, 2024): a mixture keeps h's robustness and gains g's accuracy only if h's robust examples keep a
    large probability margin under attack while its clean mistakes have small ones. For a module with a mixture
    (``MixedClassifierModule``, ``MixedNUTSModule``) h and g are its bases; for any other module h is its
    classifier and g, optional, comes from ``standard_checkpoint`` (it makes the clean side of the curve exact and
    gives the clean gap; without it the clean side assumes a g that is always right).

    Metrics: ``<stage>/confidence/clean_acc``, ``<stage>/confidence/robust_acc/<attack>`` (h under APGD-CE and
    APGD-T, every iterate), ``<stage>/confidence/auc``, ``<stage>/confidence/recommended_alpha`` and the predicted
    ``.../recommended_clean_acc``, ``.../recommended_robust_acc`` (and ``.../gap_recovered`` with g).

    Args:
        eps, norm: the threat model of the attacks on h.
        steps: APGD iterations of each run (AutoAttack: 100).
        targets: target classes of APGD-T (AutoAttack: 9).
        restarts: restarts of each run.
        standard_checkpoint: a robustlit checkpoint or export of the standard model g (modules without a mixture).
        alphas: the constant alphas of the predicted curve (default 0.5, 0.505, ..., 1).
        robustness_budget: the largest predicted loss of robust accuracy the recommended alpha may cost.
        (others): see :class:`~robustlit.callbacks.evaluation.EvaluationCallback`.
    """

    needs_gradients = True
    report_name, title = "confidence_report", "confidence report of the robust model"

    def __init__(
        self,
        eps: PositiveFloat,
        norm: Norm = "Linf",
        steps: PositiveInt = 100,
        targets: PositiveInt = 9,
        restarts: PositiveInt = 1,
        standard_checkpoint: str | None = None,
        alphas: list[ClosedUnitInterval] | None = None,
        robustness_budget: ClosedUnitInterval = 0.02,
        num_examples: PositiveInt | None = None,
        batch_size: PositiveInt = 256,
        every_n_epochs: PositiveInt = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        print_table: bool = True,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__(num_examples, batch_size, every_n_epochs, stages, seed, cache_dir, print_table, num_workers)
        if not eps > 0:
            raise ValueError(f"ConfidenceReport.eps must be > 0; got {eps}")
        for field, value in (("steps", steps), ("targets", targets), ("restarts", restarts)):
            if value < 1:
                raise ValueError(f"ConfidenceReport.{field} must be >= 1; got {value}")
        self.alphas = sorted(set(DEFAULT_ALPHAS if alphas is None else alphas))
        if not self.alphas or any(not 0.0 <= a <= 1.0 for a in self.alphas):
            raise ValueError(f"ConfidenceReport.alphas must be a non-empty list in [0, 1]; got {alphas}")
        if not 0.0 <= robustness_budget <= 1.0:
            raise ValueError(f"ConfidenceReport.robustness_budget must lie in [0, 1]; got {robustness_budget}")
        self.eps, self.norm, self.steps, self.targets, self.restarts = eps, norm, steps, targets, restarts
        self.standard_checkpoint, self.robustness_budget = standard_checkpoint, robustness_budget

    @property
    def attack_name(self) -> str:
        """The metric name of the attacks on h: APGD-CE plus APGD-T, iterations, norm and eps."""
        return f"apgd_ce_t{self.targets}_{self.steps}_{self.norm.lower()}_{self.eps:g}"

    def evaluate(
        self,
        robust: nn.Module,
        dataset: Dataset,
        bounds: tuple[float, float] | None,
        device: torch.device,
        standard: nn.Module | None = None,
    ) -> dict:
        """The report of ``robust`` (and ``standard``) on the first ``num_examples`` of ``dataset`` (every rank)."""

        def batch(x: Tensor, y: Tensor, batch_id: int) -> dict[str, Tensor]:
            with self.seeded(batch_id, 0, x.device):
                margins, _ = worst_case_margins(
                    robust, x, y, self.eps, self.steps, self.norm, self.targets, self.restarts, bounds
                )
            with torch.no_grad():
                out = {"clean_logits": robust(x).float(), "worst_margin": margins}
                if standard is not None:
                    out["standard_logits"] = standard(x).float()
            return out

        # the cache is keyed by h's weights; g's fingerprint joins the tag, since its clean logits are cached too
        tag = self.attack_name + ("" if standard is None else f"-g{model_fingerprint(standard)[:12]}")
        columns = self.collect(dataset, batch, device, bounds, cache_model=robust, cache_tag=tag)
        report = summarise_confidence(
            columns["label"], columns["clean_logits"], columns["worst_margin"], columns.get("standard_logits"),
            self.alphas, self.robustness_budget,
        )  # fmt: skip
        attack = {"eps": self.eps, "norm": self.norm, "steps": self.steps, "targets": self.targets}
        return report | {"attack": attack | {"restarts": self.restarts, "name": self.attack_name}}

    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        robust, standard = robust_and_standard_of(pl_module)
        if standard is None and self.standard_checkpoint is not None:
            standard = load_classifier(self.standard_checkpoint).to(pl_module.device)
        return self.evaluate(robust, dataset, getattr(pl_module, "bounds", (0.0, 1.0)), pl_module.device, standard)

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        prefix, best = f"{stage}/confidence", summary["recommended"]
        log = {
            f"{prefix}/clean_acc": summary["clean_acc"],
            f"{prefix}/robust_acc/{summary['attack']['name']}": summary["robust_acc"],
            f"{prefix}/recommended_alpha": best["alpha"],
            f"{prefix}/recommended_clean_acc": best["clean_acc"],
            f"{prefix}/recommended_robust_acc": best["robust_acc"],
        }
        if summary["auc"] is not None:
            log[f"{prefix}/auc"] = summary["auc"]
        if best.get("gap_recovered") is not None:
            log[f"{prefix}/gap_recovered"] = best["gap_recovered"]
        return log

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        data = {k: summary[k] for k in ("curve", "recommended", "auc", "clean_acc", "robust_acc")}
        return {"confidence_figure": (confidence_figure(summary, title=f"{stage}: {self.title}"), data)}

    def print_summary(self, summary: dict, title: str) -> None:
        console = Console()
        console.width = max(console.width, 120)
        console.print(confidence_table(summary, title))

    def state_fields(self) -> dict[str, Any]:
        return {"stages": sorted(self.stages), "attack": self.attack_name}
