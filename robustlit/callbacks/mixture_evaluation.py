"""Evaluation of a mixed classifier and its two base models as a Lightning callback (docs/mixed_classifier.md).

Attacks run end to end on the whole mixture, gradients through alpha and the mixing network's
tapped features (docs/contracts.md: eval-mode attacks, gradients, honest names).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
)
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from robustlit.attacks.adaptive_mixture import adaptive_pgd_attack
from robustlit.attacks.eval_mode import attack_mode, check_gradients_available
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.mixture_figure import sweep_figure
from robustlit.callbacks.mixture_table import print_mixture_table
from robustlit.certify.mixture_certify import certify_mixture_lipschitz, certify_mixture_smoothed
from robustlit.data.base import check_in_bounds
from robustlit.models.mixture import MixedClassifier
from robustlit.utils.distributed import gather_objects, my_batches

Stage = Literal["validate", "test"]
MODELS = ("standard", "robust", "mixture")
#: attacks that get an adaptive (alpha-pushing) twin on the mixture
ADAPTIVE_ELIGIBLE = frozenset({"pgd", "native_pgd"})


def _dataset_of(loaders: object) -> Dataset:
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    return loader.dataset


def find_mixture(pl_module: nn.Module) -> MixedClassifier:
    """The :class:`MixedClassifier` of a module (``.mixture``, ``.classifier`` or the module itself)."""
    for candidate in (getattr(pl_module, "mixture", None), getattr(pl_module, "classifier", None), pl_module):
        if isinstance(candidate, MixedClassifier):
            return candidate
    raise TypeError(
        f"MixtureEvaluation needs a mixed classifier; {type(pl_module).__name__} has none. Use it with "
        "robustlit.methods.mixed.MixedClassifierModule, or AdversarialEvaluation for ordinary models."
    )


class MixtureEvaluation(Callback):
    """Clean and robust accuracy of the standard base g, the robust base h and the mixture, side by side.

    On the first ``num_examples`` validation/test examples:

    - every attack in ``attacks`` against g, h and the whole mixture (end to end, through alpha);
    - for each ``pgd``/``native_pgd`` attack, its *adaptive* version on the mixture: PGD on
      ``(1 - w) CE + w BCE(gamma, 1)`` (pushes alpha towards g), one run per w in ``bce_weights``,
      an example robust only if it survives all of them;
    - ``worst``: per example, robust against every attack above (the honest headline number);
    - a constant-alpha sweep (``sweep_alphas``) of clean vs robust accuracy under ``attacks[0]``,
      logged as a figure to TensorBoard and saved as PNG/JSON in the log dir;
    - certified accuracy of the mixture: Lipschitz version (``lipschitz`` = a sound bound on the
      Lipschitz constant of h's softmax outputs) and/or randomized-smoothing version when the robust
      base is a smoothed classifier (``smoothing_sigma``; Monte Carlo with ``n0``/``n`` draws). Both
      use a lower bound on alpha over the ball: the constant alpha or the mixing net's ``alpha_min``.

    Metrics: ``<stage>/mixture_eval/<model>/clean_acc``, ``.../robust_acc/<attack>``,
    ``.../robust_acc/adaptive_<attack>``, ``.../robust_acc/worst``, ``<stage>/mixture_eval/mixture/
    alpha_clean|alpha_adaptive``, ``<stage>/mixture_sweep/alpha_<a>/clean_acc|robust_acc``,
    ``<stage>/mixture_certified/<lipschitz|smoothing>/acc_at_<r>|mean_radius``. Examples are dealt
    to DDP ranks in whole fixed batches (seeded by batch index) without padding, as in
    ``AdversarialEvaluation``; a rich table is printed at the end (rank 0).

    Args:
        attacks: attacks run on all three models (default: PGD-50 Linf eps 0.2, step 0.01).
        bce_weights: weights w of the adaptive attacks (empty: no adaptive attack).
        sweep_alphas: constant alphas of the sweep (empty: no sweep).
        num_examples: examples to evaluate (``None``: all).
        batch_size: attack batch size.
        every_n_epochs: frequency during ``fit``.
        stages: run at ``validate`` and/or ``test``.
        seed: base seed of the attacks' and the sampling's randomness.
        lipschitz: Lipschitz bound for the Lipschitz certificate (``None``: skip it).
        smoothing_sigma: noise level if h is a Gaussian-smoothed classifier (``None``: skip it).
        n0, n: selection / estimation samples of the smoothing certificate.
        confidence_alpha: error probability of the Clopper-Pearson bound.
        certified_radii: radii at which certified accuracy is logged.
        print_table: print the rich table at the end of fit/validate/test (rank 0).
    """

    def __init__(
        self,
        attacks: list[AttackSpec] | None = None,
        bce_weights: list[ClosedUnitInterval] | None = None,
        sweep_alphas: list[ClosedUnitInterval] | None = None,
        num_examples: PositiveInt | None = 1000,
        batch_size: PositiveInt = 256,
        every_n_epochs: PositiveInt = 1,
        stages: list[Stage] | None = None,
        seed: int = 0,
        lipschitz: PositiveFloat | None = None,
        smoothing_sigma: PositiveFloat | None = None,
        n0: PositiveInt = 100,
        n: PositiveInt = 1000,
        confidence_alpha: OpenUnitInterval = 0.001,
        certified_radii: list[NonNegativeFloat] | None = None,
        print_table: bool = True,
    ) -> None:
        self.attacks = list(attacks) if attacks else [AttackSpec("pgd", "Linf", 0.2, 50, 0.01)]
        names = [a.metric_name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ValueError(f"MixtureEvaluation: duplicate attacks {names}")
        self.bce_weights = [0.25, 0.5] if bce_weights is None else list(bce_weights)
        self.sweep_alphas = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] if sweep_alphas is None else list(sweep_alphas)
        for field, values in (("bce_weights", self.bce_weights), ("sweep_alphas", self.sweep_alphas)):
            if any(not 0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"MixtureEvaluation.{field} must lie in [0, 1]; got {values}")
        if not 0.0 < confidence_alpha < 1.0:
            raise ValueError(f"MixtureEvaluation.confidence_alpha must lie in (0, 1); got {confidence_alpha}")
        for field, value in (("lipschitz", lipschitz), ("smoothing_sigma", smoothing_sigma)):
            if value is not None and not value > 0:
                raise ValueError(f"MixtureEvaluation.{field} must be positive or null; got {value}")
        self.num_examples, self.batch_size, self.every_n_epochs = num_examples, batch_size, every_n_epochs
        self.stages = set(stages or ["validate", "test"])
        self.seed = seed
        self.lipschitz, self.smoothing_sigma = lipschitz, smoothing_sigma
        self.n0, self.n, self.confidence_alpha = n0, n, confidence_alpha
        self.certified_radii = sorted(set(certified_radii or [0.0, 0.1, 0.2]))
        self.print_table = print_table
        self.results: dict[str, dict] = {}

    @property
    def adaptive_attacks(self) -> list[AttackSpec]:
        return [s for s in self.attacks if s.name in ADAPTIVE_ELIGIBLE] if self.bce_weights else []

    # ---- hooks -----------------------------------------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" in self.stages and not trainer.sanity_checking:
            check_gradients_available()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            check_gradients_available()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" not in self.stages or trainer.sanity_checking:
            return
        if trainer.state.fn == "fit":
            last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
            if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not last_epoch:
                return
        self._run(trainer, pl_module, "val", _dataset_of(trainer.val_dataloaders))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._run(trainer, pl_module, "test", _dataset_of(trainer.test_dataloaders))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print("val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print("test")

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(
        self,
        mixture: MixedClassifier,
        dataset: Dataset,
        num_classes: int,
        bounds: tuple[float, float] | None,
        device: torch.device,
    ) -> dict:
        """Evaluate g, h and the mixture on the first ``num_examples`` of ``dataset`` (all ranks)."""
        check_gradients_available()
        n = len(dataset) if self.num_examples is None else min(self.num_examples, len(dataset))
        models = {"standard": mixture.standard, "robust": mixture.robust, "mixture": mixture}
        attacks = {
            name: [build_attack(s, model, num_classes, bounds, self.batch_size) for s in self.attacks]
            for name, model in models.items()
        }
        local = []
        for batch_id, indices in my_batches(n, self.batch_size):
            x, y = default_collate([dataset[i] for i in indices])[:2]
            x, y = x.to(device), y.to(device)
            check_in_bounds(x, bounds, "MixtureEvaluation")
            row = {"index": torch.tensor(indices), "label": y.cpu()}
            with attack_mode(mixture):
                row.update(self._robustness(models, attacks, x, y, batch_id, bounds))
                row.update(self._sweep(mixture, attacks["mixture"][0], x, y, batch_id))
                row.update(self._certify(mixture, x, y, batch_id, bounds))
            local.append(row)
        rows = [row for part in gather_objects(local) for row in part]
        return self._summarise(rows, n, mixture)

    @contextmanager
    def _seeded(self, batch_id: int, k: int, device: torch.device) -> Iterator[None]:
        """Randomness of attack ``k`` on batch ``batch_id``: the same whatever the world size."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed + 100_003 * batch_id + 7919 * k)
            yield

    def _robustness(self, models, attacks, x: Tensor, y: Tensor, batch_id: int, bounds) -> dict:  # noqa: ANN001
        out: dict = {}
        k = 0
        for name, model in models.items():
            with torch.no_grad():
                clean = model(x).argmax(dim=1) == y
            out[f"{name}/clean"] = clean.cpu()
            for spec, attack in zip(self.attacks, attacks[name], strict=True):
                with self._seeded(batch_id, k, x.device):
                    x_adv = attack(x, y)
                k += 1
                with torch.no_grad():
                    out[f"{name}/{spec.metric_name}"] = (clean & (model(x_adv).argmax(dim=1) == y)).cpu()
                if name == "mixture" and spec is self.attacks[0]:
                    out["alpha_attacked"] = models["mixture"].forward_with_alpha(x_adv)[1].detach().cpu()
        mixture = models["mixture"]
        with torch.no_grad():
            out["alpha_clean"] = mixture.forward_with_alpha(x)[1].cpu()
        alphas = []
        for spec in self.adaptive_attacks:
            ok = out["mixture/clean"].clone()
            for w in self.bce_weights:
                with self._seeded(batch_id, k, x.device):
                    x_adv = adaptive_pgd_attack(
                        mixture,
                        x,
                        y,
                        eps=spec.eps,
                        step_size=spec.effective_step_size,
                        steps=spec.effective_steps,
                        norm=spec.norm,
                        bce_weight=w,
                        random_start=spec.random_start,
                        bounds=bounds,
                        restarts=spec.restarts,
                    )
                k += 1
                with torch.no_grad():
                    log_probs, alpha, _ = mixture.forward_with_alpha(x_adv)
                ok &= (log_probs.argmax(dim=1) == y).cpu()
                alphas.append(alpha.cpu())
            out[f"mixture/adaptive_{spec.metric_name}"] = ok
        if alphas:
            out["alpha_adaptive"] = torch.stack(alphas).mean(dim=0)  # per example, mean over the runs
        return out

    def _sweep(self, mixture: MixedClassifier, attack, x: Tensor, y: Tensor, batch_id: int) -> dict:  # noqa: ANN001
        out: dict = {}
        previous = mixture.alpha
        try:
            for j, a in enumerate(self.sweep_alphas):
                mixture.set_constant_alpha(a)
                with torch.no_grad():
                    clean = mixture(x).argmax(dim=1) == y
                with self._seeded(batch_id, 10_000 + j, x.device):
                    x_adv = attack(x, y)
                with torch.no_grad():
                    robust = clean & (mixture(x_adv).argmax(dim=1) == y)
                out[f"sweep/{j}/clean"], out[f"sweep/{j}/robust"] = clean.cpu(), robust.cpu()
        finally:
            mixture.alpha = previous
        return out

    @staticmethod
    def alpha_lower_bound(mixture: MixedClassifier) -> float:
        """A lower bound on the mixture's alpha anywhere: the constant, or the compressed minimum (eval)."""
        if mixture.alpha is not None:
            return mixture.alpha
        assert mixture.mixing_network is not None
        return float(mixture.mixing_network.alpha_min) if mixture.compress_alpha is not False else 0.0

    def _certify(self, mixture: MixedClassifier, x: Tensor, y: Tensor, batch_id: int, bounds) -> dict:  # noqa: ANN001
        out: dict = {}
        alpha = self.alpha_lower_bound(mixture)
        if self.lipschitz is not None:
            pred, radius = certify_mixture_lipschitz(mixture.robust, x, alpha, self.lipschitz, mixture.scale_rob)
            out["cert/lipschitz/correct"], out["cert/lipschitz/radius"] = (pred == y).cpu(), radius.cpu()
        if self.smoothing_sigma is not None:
            generator = torch.Generator(device=x.device).manual_seed(self.seed + 100_003 * batch_id + 17)
            pred, radius = certify_mixture_smoothed(
                mixture.robust,
                x,
                alpha,
                self.smoothing_sigma,
                self.n0,
                self.n,
                self.confidence_alpha,
                batch_size=max(self.batch_size, 100),
                bounds=bounds,
                generator=generator,
            )
            out["cert/smoothing/correct"], out["cert/smoothing/radius"] = (
                (pred.to(y.device) == y).cpu(),
                radius,
            )
        return out

    def _summarise(self, rows: list[dict], n: int, mixture: MixedClassifier) -> dict:
        index = torch.cat([r["index"] for r in rows])
        order = index.argsort()
        if not torch.equal(index[order], torch.arange(n)):
            raise RuntimeError("MixtureEvaluation: gathered examples are not exactly 0..n-1 once each")

        def column(key: str) -> Tensor:
            return torch.cat([r[key] for r in rows])[order]

        def acc(mask: Tensor) -> float:
            return mask.float().mean().item()

        summary: dict = {
            "num_examples": n,
            "attacks": [asdict(s) | {"metric_name": s.metric_name} for s in self.attacks],
            "adaptive": {
                "bce_weights": self.bce_weights,
                "of": [s.metric_name for s in self.adaptive_attacks],
            },
            "alpha": "mixing network" if mixture.alpha is None else mixture.alpha,
            "models": {},
        }
        for name in MODELS:
            keys = [f"{name}/{s.metric_name}" for s in self.attacks]
            if name == "mixture":
                keys += [f"mixture/adaptive_{s.metric_name}" for s in self.adaptive_attacks]
            robust = {key.split("/", 1)[1]: column(key) for key in keys}
            summary["models"][name] = {
                "clean_acc": acc(column(f"{name}/clean")),
                "robust_acc": {k: acc(v) for k, v in robust.items()},
                "worst_robust_acc": acc(torch.stack(list(robust.values())).all(dim=0)),
            }
        summary["models"]["mixture"]["alpha_clean"] = column("alpha_clean").float().mean().item()
        summary["models"]["mixture"]["alpha_attacked"] = column("alpha_attacked").float().mean().item()
        if self.adaptive_attacks:
            summary["models"]["mixture"]["alpha_adaptive"] = column("alpha_adaptive").float().mean().item()
        summary["sweep"] = {
            "attack": self.attacks[0].metric_name,
            "points": [
                {
                    "alpha": a,
                    "clean_acc": acc(column(f"sweep/{j}/clean")),
                    "robust_acc": acc(column(f"sweep/{j}/robust")),
                }
                for j, a in enumerate(self.sweep_alphas)
            ],
        }
        summary["certified"] = {}
        for kind, params in (
            ("lipschitz", {"lipschitz": self.lipschitz}),
            (
                "smoothing",
                {"sigma": self.smoothing_sigma, "n0": self.n0, "n": self.n, "alpha": self.confidence_alpha},
            ),
        ):
            if f"cert/{kind}/radius" not in rows[0]:
                continue
            correct, radius = column(f"cert/{kind}/correct"), column(f"cert/{kind}/radius")
            summary["certified"][kind] = {
                **params,
                "mixture_alpha_lower_bound": self.alpha_lower_bound(mixture),
                "mean_radius": (radius * correct).double().mean().item(),
                # certified at r: h right, the margin condition holds (radius > 0) and radius >= r
                "acc_at": {str(r): acc(correct & (radius > 0) & (radius >= r)) for r in self.certified_radii},
            }
        return summary

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, dataset: Dataset) -> None:
        mixture = find_mixture(pl_module)
        summary = self.evaluate(mixture, dataset, pl_module.num_classes, pl_module.bounds, pl_module.device)
        summary["epoch"] = trainer.current_epoch
        self.results[stage] = summary
        pl_module.log_dict(self.metrics(summary, stage), on_step=False, on_epoch=True, sync_dist=True)
        self._write(trainer, trainer.log_dir, stage, summary)  # log_dir is a collective: read it on every rank

    @staticmethod
    def metrics(summary: dict, stage: str) -> dict[str, float]:
        """Flat ``{metric name: value}`` of a summary (what is logged)."""
        log: dict[str, float] = {}
        for name, res in summary["models"].items():
            prefix = f"{stage}/mixture_eval/{name}"
            log[f"{prefix}/clean_acc"] = res["clean_acc"]
            for attack, value in res["robust_acc"].items():
                log[f"{prefix}/robust_acc/{attack}"] = value
            log[f"{prefix}/robust_acc/worst"] = res["worst_robust_acc"]
            for key in ("alpha_clean", "alpha_attacked", "alpha_adaptive"):
                if key in res:
                    log[f"{prefix}/{key}"] = res[key]
        for point in summary["sweep"]["points"]:
            log[f"{stage}/mixture_sweep/alpha_{point['alpha']:g}/clean_acc"] = point["clean_acc"]
            log[f"{stage}/mixture_sweep/alpha_{point['alpha']:g}/robust_acc"] = point["robust_acc"]
        for kind, res in summary["certified"].items():
            log[f"{stage}/mixture_certified/{kind}/mean_radius"] = res["mean_radius"]
            for r, value in res["acc_at"].items():
                log[f"{stage}/mixture_certified/{kind}/acc_at_{float(r):g}"] = value
        return log

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, log_dir: str | None, stage: str, summary: dict) -> None:
        figure = sweep_figure(summary) if summary["sweep"]["points"] else None
        for logger in trainer.loggers:
            if figure is not None and isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(
                    f"{stage}/mixture_sweep", figure, global_step=trainer.global_step, close=False
                )
        if log_dir is None:
            return
        root = Path(log_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / f"mixture_evaluation_{stage}.json").write_text(json.dumps(summary, indent=2))
        if figure is not None:
            figure.savefig(root / f"mixture_sweep_{stage}.png", dpi=120)

    @rank_zero_only
    def _print(self, stage: str) -> None:
        if self.print_table and stage in self.results:
            print_mixture_table(self.results[stage], title=f"{stage}: standard base, robust base and mixture")

    @property
    def state_key(self) -> str:
        """Unique per configuration, so several instances (e.g. one per stage) can be checkpointed."""
        return self._generate_state_key(stages=sorted(self.stages), attacks=[a.metric_name for a in self.attacks])

    def state_dict(self) -> dict:
        return {"results": self.results}

    def load_state_dict(self, state_dict: dict) -> None:
        self.results = state_dict.get("results", {})
