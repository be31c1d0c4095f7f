"""MixedNUTS as a robustlit model: two base checkpoints, calibration on the validation split, CLI evaluation.

Bai, Zhou, Patel, Sojoudi (TMLR 2024, arXiv 2402.02263); docs/mixed_classifier.md. Training-free: the
first ``robustlit validate`` / ``robustlit test`` builds the two calibration sets from the validation split, as
the authors do: (a) h's logits at each example's minimum-margin iterate of APGD-CE and APGD-T (9 targets), for
the examples that neither these attacks nor AutoAttack break; (b) h's clean logits of the examples it
misclassifies. Then the 3-parameter grid search (degenerate grid points refused), (s, c, p, alpha) stored in the
classifier's buffers and optionally the checkpoint saved. A reloaded checkpoint is already calibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jsonargparse.typing import ClosedUnitInterval, OpenUnitInterval, PositiveFloat, PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader

from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.methods.base import RobustClassifier
from robustlit.mixed.bases import load_base_model
from robustlit.mixed.confidence import worst_case_margins
from robustlit.mixed.mixednuts import MIN_CUTOFF, search_mixednuts_parameters
from robustlit.mixed.mixednuts_classifier import MixedNUTSClassifier

__all__ = ["MixedNUTSModule"]


class MixedNUTSModule(RobustClassifier):
    """MixedNUTS (Bai et al. 2024) of a standard base g and a robust base h; nothing to fit.

    Args:
        standard_checkpoint, robust_checkpoint, standard, robust, standard_config, robust_config: the
            base models, as for :class:`~robustlit.mixed.module.MixedClassifierModule`.
        calibration_attack: threat model and budget (norm, eps, steps, restarts) of the attacks on h that build
            set (a): APGD-CE and APGD-T, each example's minimum-margin iterate kept
            (:func:`robustlit.mixed.confidence.worst_case_margins`); the name must be ``apgd``.
        calibration_targets: target classes of the calibration APGD-T (the authors: 9).
        calibration_autoattack: also drop the examples standard AutoAttack breaks (the authors do).
        calibration_examples: validation examples used (``None``: all).
        s_grid, c_grid, p_grid: the search grids of the transform's scale, shift and power.
        keep_fraction: share of h's attacked-and-correct calibration examples the mixture must keep (the authors'
            beta: 98.5 % on CIFAR, where h keeps about 70 %: about 1 point of robust accuracy).
        robustness_budget: instead of ``keep_fraction``, the robust accuracy (a fraction, e.g. 0.02 = 2 points) the
            mixture may give up on the calibration examples: ``keep_fraction = 1 - budget / (share of the calibration
            examples in set (a))``, the same budget as the confidence report's recommended constant alpha.
        min_cutoff: grid points whose cutoff lies below it are refused (the transformed margins underflow).
        k: top-k of the logit standardisation.
        transform: False gives the plain constant-alpha mixture (no transform, no hard max; alpha as given).
        alpha: alpha when ``transform`` is False or before calibration.
        surrogate_temperature: temperature of the attack surrogate of the hard max.
        save_calibrated: path where the calibrated checkpoint is written (``None``: not written).
        mean, std: linked from the data by the CLI and ignored (the base models normalise their own inputs).
        **kwargs: see :class:`RobustClassifier` (num_classes, bounds).
    """

    #: training-free: the base models come from their checkpoints, calibration runs in validate/test
    ready_without_checkpoint = True

    def __init__(
        self,
        standard_checkpoint: str | None = None,
        robust_checkpoint: str | None = None,
        standard: torch.nn.Module | None = None,
        robust: torch.nn.Module | None = None,
        standard_config: dict | None = None,
        robust_config: dict | None = None,
        calibration_attack: AttackSpec | None = None,
        calibration_targets: PositiveInt = 9,
        calibration_autoattack: bool = True,
        calibration_examples: PositiveInt | None = None,
        s_grid: list[PositiveFloat] | None = None,
        c_grid: list[float] | None = None,
        p_grid: list[PositiveFloat] | None = None,
        keep_fraction: OpenUnitInterval | float = 0.985,
        robustness_budget: OpenUnitInterval | None = None,
        min_cutoff: PositiveFloat = MIN_CUTOFF,
        k: PositiveInt = 250,
        transform: bool = True,
        alpha: ClosedUnitInterval = 0.5,
        surrogate_temperature: PositiveFloat = 1.0,
        save_calibrated: str | None = None,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        **kwargs: Any,
    ) -> None:
        g, g_config = load_base_model("standard", standard, standard_config, standard_checkpoint)
        h, h_config = load_base_model("robust", robust, robust_config, robust_checkpoint)
        mixture = MixedNUTSClassifier(
            g, h, alpha=alpha, k=k, transform=transform, surrogate_temperature=surrogate_temperature
        )
        super().__init__(backbone=mixture, mean=(0.0,), std=(1.0,), **kwargs)
        self.remove_ignored_hparams(["backbone"])
        self.hparams["standard_config"], self.hparams["robust_config"] = g_config, h_config
        self.calibration_attack = calibration_attack or AttackSpec("apgd", "Linf", 8 / 255, 100)
        if self.calibration_attack.name != "apgd":
            raise ValueError(
                "MixedNUTSModule.calibration_attack gives the threat model and budget of the calibration's APGD-CE and "
                f"APGD-T (robustlit's, keeping each example's minimum-margin iterate); its name must be 'apgd', got "
                f"{self.calibration_attack.name!r}"
            )
        self.calibration_targets, self.calibration_autoattack = calibration_targets, calibration_autoattack
        self.calibration_examples = calibration_examples
        self.s_grid = list(s_grid or [0.5, 1.0, 2.0, 4.0, 8.0])
        self.c_grid = list(c_grid if c_grid is not None else [-1.0, -0.5, 0.0, 0.5, 1.0])
        self.p_grid = list(p_grid or [1.0, 2.0, 4.0])
        if not 0.0 < keep_fraction <= 1.0:
            raise ValueError(f"MixedNUTSModule.keep_fraction must lie in (0, 1]; got {keep_fraction}")
        if robustness_budget is not None and not 0.0 < robustness_budget < 1.0:
            raise ValueError(
                f"MixedNUTSModule.robustness_budget must lie in (0, 1) or be null; got {robustness_budget}"
            )
        self.keep_fraction, self.save_calibrated, self.min_cutoff = keep_fraction, save_calibrated, min_cutoff
        self.robustness_budget = robustness_budget
        self.calibration_seen = 0
        self.search_result: dict[str, float] | None = None

    @property
    def mixture(self) -> MixedNUTSClassifier:
        """The :class:`MixedNUTSClassifier`."""
        return self.classifier[1]

    def calibration_sets(self, loader: DataLoader) -> tuple[Tensor, Tensor]:
        """(a) h's logits at each example's minimum-margin iterate of APGD-CE and APGD-T, for the examples no iterate
        and (with ``calibration_autoattack``) no AutoAttack point misclassifies; (b) h's clean logits where h is
        wrong. An attack that returns the clean input when it fails (torchattacks' APGD) would give h's clean
        logits for set (a) instead, which makes the search pick far too small an alpha (Bai et al. 2024 keep the
        minimum-margin iterate, ``adaptive_autoattack/autopgd_base.py``)."""
        h, spec = self.mixture.robust, self.calibration_attack
        autoattack = None
        if self.calibration_autoattack:
            aa_spec = AttackSpec("autoattack", spec.norm, spec.eps)
            autoattack = build_attack(aa_spec, h, self.num_classes, self.bounds, loader.batch_size or 256)
        attacked, wrong, seen = [], [], 0
        for batch_id, (x, y) in enumerate(loader):
            if self.calibration_examples is not None and seen >= self.calibration_examples:
                break
            if self.calibration_examples is not None:
                x, y = x[: self.calibration_examples - seen], y[: self.calibration_examples - seen]
            seen += len(y)
            x, y = x.to(self.device), y.to(self.device)
            devices = [x.device] if x.device.type == "cuda" else []
            # the random starts seeded per batch (RNG restored); gradients on even inside Lightning's evaluation loop
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                torch.manual_seed(100_003 * batch_id)
                margins, points = worst_case_margins(
                    h, x, y, spec.eps, spec.effective_steps, spec.norm, self.calibration_targets, spec.restarts,
                    self.bounds,
                )  # fmt: skip
                robust = margins > 0
                if autoattack is not None and bool(robust.any()):
                    x_aa = autoattack(x[robust], y[robust])
                    with torch.no_grad():
                        broken = h(x_aa).argmax(dim=1) != y[robust]
                    robust[robust.nonzero().squeeze(1)[broken]] = False
            with torch.no_grad():
                clean, worst = h(x), h(points)
            attacked.append(worst[robust].cpu())
            wrong.append(clean[clean.argmax(dim=1) != y].cpu())
        self.calibration_seen = seen
        return torch.cat(attacked), torch.cat(wrong)

    def calibrate(self, loader: DataLoader) -> dict[str, float]:
        """Build the calibration sets, run the (s, c, p) search, store the result in the classifier."""
        set_a, set_b = self.calibration_sets(loader)
        if len(set_a) == 0 or len(set_b) == 0:
            raise RuntimeError(
                f"MixedNUTS calibration needs both sets non-empty; got {len(set_a)} attacked-and-correct and "
                f"{len(set_b)} misclassified validation examples of the robust model"
            )
        keep = self.keep_fraction
        if self.robustness_budget is not None:
            keep = min(1.0, max(1e-6, 1.0 - self.robustness_budget * self.calibration_seen / len(set_a)))
        result = search_mixednuts_parameters(
            set_a, set_b, self.s_grid, self.c_grid, self.p_grid, keep, self.mixture.k, self.min_cutoff
        )
        result |= {"set_a": float(len(set_a)), "set_b": float(len(set_b)), "keep_fraction": keep}
        result |= {"calibration_examples": float(self.calibration_seen)}
        self.mixture.set_parameters(result["s"], result["c"], result["p"], result["alpha"])
        self.search_result = result
        return result

    def _ensure_calibrated(self) -> None:
        if bool(self.mixture.calibrated) or not self.mixture.transform:
            return
        datamodule = self.trainer.datamodule
        if getattr(datamodule, "val_dataset", None) is None:
            datamodule.setup("validate")
        result = self.calibrate(datamodule.val_dataloader())
        print(
            f"MixedNUTS calibrated on the validation split ({int(result['set_a'])} attacked-and-correct, "
            f"{int(result['set_b'])} misclassified; keep fraction {result['keep_fraction']:.4f}): s={result['s']:g} "
            f"c={result['c']:g} p={result['p']:g} alpha={result['alpha']:.4f} objective={result['objective']:.3f}; "
            f"refused {int(result['refused_predictions'])} of {int(result['grid_points'])} grid points that change h's "
            f"predictions and {int(result['refused_underflow'])} whose cutoff underflows"
        )
        if self.save_calibrated:
            Path(self.save_calibrated).parent.mkdir(parents=True, exist_ok=True)
            self.trainer.save_checkpoint(self.save_calibrated)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the search's record (set sizes, objective, refused grid points) with the calibrated checkpoint."""
        checkpoint["mixednuts_search"] = self.search_result

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.search_result = checkpoint.get("mixednuts_search")

    def on_validation_start(self) -> None:
        self._ensure_calibrated()

    def on_test_start(self) -> None:
        self._ensure_calibrated()

    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several return types
        raise ValueError(
            "MixedNUTSModule is training-free: evaluate it with `robustlit validate` or `robustlit test` (the "
            "first run calibrates it on the validation split)"
        )
