"""Evaluation of a mixed classifier and its two base models as a Lightning callback (Bai et al. 2024,
MixedNUTS / adaptive smoothing; docs/mixed_classifier.md).

Attacks run end to end on the whole mixture, gradients through alpha and the mixing network's
tapped features (docs/contracts.md: eval-mode attacks, gradients at evaluation, exact DDP counts).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
)
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.data import Dataset

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.evaluation import EvaluationCallback, Stage, batch_seed
from robustlit.mixed.apgd import mixture_apgd
from robustlit.mixed.certificates import (
    SMOOTHED_BRANCH_CERTIFIES,
    SMOOTHED_BRANCH_METRIC,
    certify_mixture_lipschitz,
    certify_smoothed_robust_branch,
)
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.mixednuts_classifier import MixedNUTSClassifier
from robustlit.mixed.report_table import print_mixture_table
from robustlit.mixed.sweep_figure import sweep_figure

MODELS = ("standard", "robust", "mixture")
#: attacks whose (norm, eps, steps, restarts) get adaptive APGD-CE / APGD-T twins on the mixture
ADAPTIVE_ELIGIBLE = frozenset({"pgd", "native_pgd", "apgd", "apgd_t"})
Mixture = MixedClassifier | MixedNUTSClassifier


def find_mixture(pl_module: nn.Module) -> Mixture:
    """The mixture of a module (``.mixture``, ``.classifier`` or the module itself): a :class:`MixedClassifier`
    or a :class:`MixedNUTSClassifier`."""
    for candidate in (getattr(pl_module, "mixture", None), getattr(pl_module, "classifier", None), pl_module):
        if isinstance(candidate, MixedClassifier | MixedNUTSClassifier):
            return candidate
    raise TypeError(
        f"MixtureEvaluation needs a mixed classifier; {type(pl_module).__name__} has none. Use it with "
        "robustlit.mixed.MixedClassifierModule, or AdversarialEvaluation for ordinary models."
    )


class MixtureEvaluation(EvaluationCallback):
    """Clean and robust accuracy of the standard base g, the robust base h and the mixture, side by side.

    On the first ``num_examples`` validation/test examples:

    - every attack in ``attacks`` against g, h and the whole mixture (end to end, through alpha; by
      default standard AutoAttack, Croce and Hein 2020, and PGD-50);
    - for each ``pgd``/``native_pgd``/``apgd``/``apgd_t`` attack, *adaptive* APGD-CE and APGD-T on the
      mixture with the same eps, steps and restarts (:func:`robustlit.mixed.apgd.mixture_apgd`): APGD on
      ``(1 - w) L + w BCE(gamma, 1)`` (pushes alpha towards g), L = CE or targeted DLR (``adaptive_targets``
      target classes), one run per w in ``bce_weights`` and target, an example robust only if it survives
      all of them; every iterate counts. A mixture with a differentiable surrogate (MixedNUTS) is attacked
      through the surrogate's gradients, success judged on the exact mixture;
    - ``worst``: per example, robust against every attack above (the honest headline number);
    - a constant-alpha sweep (``sweep_alphas``) of clean vs robust accuracy under the first attack that is
      not ``autoattack`` (``attacks[0]`` if all are; for MixedNUTS also APGD-CE through its surrogate),
      logged as a figure to TensorBoard and saved as PNG/JSON in the log dir;
    - certified accuracy of the mixture: Lipschitz version (``lipschitz`` = a sound bound on the
      Lipschitz constant of h's softmax outputs), and, with ``smoothing_sigma``, a certificate of a
      *different* model, ``smoothed_robust_branch``: (1 - alpha) g + alpha Smooth_sigma(h), the mixture
      whose robust branch is the Gaussian-smoothed h (Monte Carlo with ``n0``/``n`` draws). It is not a
      certificate of the evaluated mixture, which mixes the raw h; its name and the table say so. Both
      use a lower bound on alpha over the ball: the constant alpha or the mixing net's ``alpha_min``.

    Metrics: ``<stage>/mixture_eval/<model>/clean_acc``, ``.../robust_acc/<attack>``,
    ``.../robust_acc/adaptive_<attack>``, ``.../robust_acc/worst``, ``<stage>/mixture_eval/mixture/
    alpha_clean|alpha_adaptive``, ``<stage>/mixture_sweep/alpha_<a>/clean_acc|robust_acc``,
    ``<stage>/mixture_certified/<lipschitz|smoothed_robust_branch>/acc_at_<r>|mean_radius``. Examples are dealt
    to DDP ranks in whole fixed batches (seeded by batch index) without padding, as in
    ``AdversarialEvaluation``; a rich table is printed at the end (rank 0).

    Args:
        attacks: attacks run on all three models (default: AutoAttack and PGD-50, Linf eps 0.2, step 0.01).
        bce_weights: weights w of the adaptive attacks (empty: no adaptive attack).
        adaptive_targets: target classes of the adaptive APGD-T (AutoAttack uses 9).
        sweep_alphas: constant alphas of the sweep (empty: no sweep).
        num_examples: examples to evaluate (``None``: all).
        batch_size: attack batch size.
        every_n_epochs: frequency during ``fit``.
        stages: run at ``validate`` and/or ``test``.
        seed: base seed of the attacks' and the sampling's randomness.
        lipschitz: Lipschitz bound for the Lipschitz certificate (``None``: skip it).
        smoothing_sigma: noise level if h is a Gaussian-smoothed classifier (``None``: skip it).
        n0, n: selection / estimation samples of the smoothing certificate.
        failure_prob: error probability of the Clopper-Pearson bound.
        certified_radii: radii at which certified accuracy is logged.
        print_table: print the rich table at the end of fit/validate/test (rank 0).
        num_workers: processes reading the evaluation batches (0: in the main process).
        base_models: also attack g and h (False: the mixture alone, e.g. for a constant-alpha curve whose bases
            were evaluated once).
        per_example: keep, in the summary's ``per_example``, the dataset index and, per model and attack, whether
            each example is robust (for per-example worst cases across evaluations and paired tests).
    """

    needs_gradients = True  # attacks, end to end through the mixing network
    report_name, title = "mixture_evaluation", "standard base, robust base and mixture"

    def __init__(
        self,
        attacks: list[AttackSpec] | None = None,
        bce_weights: list[ClosedUnitInterval] | None = None,
        adaptive_targets: PositiveInt = 9,
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
        failure_prob: OpenUnitInterval = 0.001,
        certified_radii: list[NonNegativeFloat] | None = None,
        print_table: bool = True,
        num_workers: NonNegativeInt = 0,
        base_models: bool = True,
        per_example: bool = False,
    ) -> None:
        self.base_models, self.per_example = base_models, per_example
        self.attacks = (
            list(attacks)
            if attacks
            else [AttackSpec("autoattack", "Linf", 0.2), AttackSpec("pgd", "Linf", 0.2, 50, 0.01)]
        )
        self.adaptive_targets = adaptive_targets
        names = [a.metric_name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ValueError(f"MixtureEvaluation: duplicate attacks {names}")
        self.bce_weights = [0.25, 0.5] if bce_weights is None else list(bce_weights)
        self.sweep_alphas = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] if sweep_alphas is None else list(sweep_alphas)
        for field, values in (("bce_weights", self.bce_weights), ("sweep_alphas", self.sweep_alphas)):
            if any(not 0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"MixtureEvaluation.{field} must lie in [0, 1]; got {values}")
        if not 0.0 < failure_prob < 1.0:
            raise ValueError(f"MixtureEvaluation.failure_prob must lie in (0, 1); got {failure_prob}")
        for field, value in (("lipschitz", lipschitz), ("smoothing_sigma", smoothing_sigma)):
            if value is not None and not value > 0:
                raise ValueError(f"MixtureEvaluation.{field} must be positive or null; got {value}")
        super().__init__(num_examples, batch_size, every_n_epochs, stages, seed, None, print_table, num_workers)
        self.lipschitz, self.smoothing_sigma = lipschitz, smoothing_sigma
        self.n0, self.n, self.failure_prob = n0, n, failure_prob
        self.certified_radii = sorted(set(certified_radii or [0.0, 0.1, 0.2]))

    @property
    def adaptive_attacks(self) -> list[tuple[str, AttackSpec, bool]]:
        """``(name, spec, targeted)`` of each adaptive attack: APGD-CE and APGD-T per eligible radius/budget."""
        if not self.bce_weights:
            return []
        out, seen = [], set()
        for spec in self.attacks:
            key = (spec.norm, spec.eps, spec.effective_steps, spec.restarts)
            if spec.name not in ADAPTIVE_ELIGIBLE or key in seen:
                continue
            seen.add(key)
            for name, targeted in (("apgd", False), ("apgd_t", True)):
                twin = AttackSpec(name, spec.norm, spec.eps, spec.effective_steps, restarts=spec.restarts)
                out.append((twin.metric_name, twin, targeted))
        return out

    @property
    def sweep_attack_index(self) -> int:
        """The attack of the constant-alpha sweep: the first that is not AutoAttack (its fixed budget is slow)."""
        return next((i for i, s in enumerate(self.attacks) if s.name != "autoattack"), 0)

    # ---- evaluation ------------------------------------------------------------------------------
    def evaluate(
        self,
        mixture: Mixture,
        dataset: Dataset,
        num_classes: int,
        bounds: tuple[float, float] | None,
        device: torch.device,
    ) -> dict:
        """Evaluate g, h and the mixture on the first ``num_examples`` of ``dataset`` (all ranks)."""
        models = {"standard": mixture.standard, "robust": mixture.robust, "mixture": mixture}
        if not self.base_models:
            models = {"mixture": mixture}
        attacks = {
            name: [build_attack(s, model, num_classes, bounds, self.batch_size) for s in self.attacks]
            for name, model in models.items()
        }

        def batch(x: Tensor, y: Tensor, batch_id: int) -> dict[str, Tensor]:
            with attack_mode(mixture):
                return {
                    **self._robustness(models, attacks, x, y, batch_id, bounds),
                    **self._sweep(mixture, attacks["mixture"][self.sweep_attack_index], x, y, batch_id, bounds),
                    **self._certify(mixture, x, y, batch_id, bounds),
                }

        return self.summarise(self.collect(dataset, batch, device, bounds), mixture)

    def _robustness(self, models, attacks, x: Tensor, y: Tensor, batch_id: int, bounds) -> dict:  # noqa: ANN001
        out: dict = {}
        for name, model in models.items():
            with torch.no_grad():
                clean = model(x).argmax(dim=1) == y
            out[f"{name}/clean"] = clean.cpu()
            for i, (spec, attack) in enumerate(zip(self.attacks, attacks[name], strict=True)):
                # the seed of each run does not depend on which models are evaluated (base_models)
                with self.seeded(batch_id, MODELS.index(name) * len(self.attacks) + i, x.device):
                    x_adv = attack(x, y)
                with torch.no_grad():
                    out[f"{name}/{spec.metric_name}"] = (clean & (model(x_adv).argmax(dim=1) == y)).cpu()
                if name == "mixture" and spec is self.attacks[0]:
                    out["alpha_attacked"] = models["mixture"].forward_with_alpha(x_adv)[1].detach().cpu()
        mixture = models["mixture"]
        k = len(MODELS) * len(self.attacks)
        with torch.no_grad():
            out["alpha_clean"] = mixture.forward_with_alpha(x)[1].cpu()
        alphas = []
        with torch.no_grad():
            num_classes = mixture(x[:1]).shape[1]
        surrogate = bool(getattr(mixture, "has_surrogate", False))
        for name, spec, targeted in self.adaptive_attacks:
            ok = out["mixture/clean"].clone()
            ranks = range(1, min(self.adaptive_targets, num_classes - 1) + 1) if targeted else (1,)
            for w in self.bce_weights:
                for rank in ranks:
                    with self.seeded(batch_id, k, x.device):
                        x_adv = mixture_apgd(
                            mixture,
                            x,
                            y,
                            eps=spec.eps,
                            steps=spec.effective_steps,
                            norm=spec.norm,
                            bce_weight=w,
                            targeted=targeted,
                            target_rank=rank,
                            bounds=bounds,
                            restarts=spec.restarts,
                            surrogate=surrogate,
                        )
                    k += 1
                    with torch.no_grad():
                        log_probs, alpha, _ = mixture.forward_with_alpha(x_adv)
                    ok &= (log_probs.argmax(dim=1) == y).cpu()
                    alphas.append(alpha.cpu())
            out[f"mixture/adaptive_{name}"] = ok
        if alphas:
            out["alpha_adaptive"] = torch.stack(alphas).mean(dim=0)  # per example, mean over the runs
        return out

    def _sweep(self, mixture: Mixture, attack, x: Tensor, y: Tensor, batch_id: int, bounds) -> dict:  # noqa: ANN001
        out: dict = {}
        previous = mixture.alpha
        try:
            for j, a in enumerate(self.sweep_alphas):
                mixture.set_constant_alpha(a)
                with torch.no_grad():
                    clean = mixture(x).argmax(dim=1) == y
                with self.seeded(batch_id, 10_000 + j, x.device):
                    x_adv = attack(x, y)
                with torch.no_grad():
                    robust = clean & (mixture(x_adv).argmax(dim=1) == y)
                if getattr(mixture, "has_surrogate", False):
                    # MixedNUTS: the hard max has no gradient, so also attack through its surrogate
                    spec = self.attacks[self.sweep_attack_index]
                    with self.seeded(batch_id, 20_000 + j, x.device):
                        x_adv = mixture_apgd(
                            mixture, x, y, spec.eps, spec.effective_steps, spec.norm, bounds=bounds, surrogate=True
                        )
                    with torch.no_grad():
                        robust &= mixture(x_adv).argmax(dim=1) == y
                out[f"sweep/{j}/clean"], out[f"sweep/{j}/robust"] = clean.cpu(), robust.cpu()
        finally:
            mixture.alpha = previous
        return out

    @staticmethod
    def alpha_lower_bound(mixture: Mixture) -> float:
        """A lower bound on the mixture's alpha anywhere: the constant, or the compressed minimum (eval)."""
        if mixture.alpha is not None:
            return mixture.alpha
        assert mixture.mixing_network is not None
        return float(mixture.mixing_network.alpha_min) if mixture.compress_alpha is not False else 0.0

    def _certify(self, mixture: Mixture, x: Tensor, y: Tensor, batch_id: int, bounds) -> dict:  # noqa: ANN001
        out: dict = {}
        alpha = self.alpha_lower_bound(mixture)
        if self.lipschitz is not None:
            pred, radius = certify_mixture_lipschitz(mixture.robust, x, alpha, self.lipschitz, mixture.scale_rob)
            out["cert/lipschitz/correct"], out["cert/lipschitz/radius"] = (pred == y).cpu(), radius.cpu()
        if self.smoothing_sigma is not None:
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(self.seed, batch_id) + 17)
            pred, radius = certify_smoothed_robust_branch(
                mixture.robust,
                x,
                alpha,
                self.smoothing_sigma,
                self.n0,
                self.n,
                self.failure_prob,
                batch_size=max(self.batch_size, 100),
                bounds=bounds,
                generator=generator,
            )
            out[f"cert/{SMOOTHED_BRANCH_METRIC}/correct"], out[f"cert/{SMOOTHED_BRANCH_METRIC}/radius"] = (
                (pred.to(y.device) == y).cpu(),
                radius,
            )
        return out

    def summarise(self, columns: dict[str, Tensor], mixture: Mixture) -> dict:
        """The summary of the gathered per-example columns (see :meth:`evaluate`)."""
        n = int(columns["index"].numel())

        def column(key: str) -> Tensor:
            return columns[key]

        def acc(mask: Tensor) -> float:
            return mask.float().mean().item()

        summary: dict = {
            "num_examples": n,
            "attacks": [asdict(s) | {"metric_name": s.metric_name} for s in self.attacks],
            "adaptive": {
                "bce_weights": self.bce_weights,
                "of": [name for name, _, _ in self.adaptive_attacks],
                "targets": self.adaptive_targets,
            },
            "alpha": "mixing network" if mixture.alpha is None else mixture.alpha,
            "models": {},
        }
        worst: dict[str, Tensor] = {}
        for name in [m for m in MODELS if f"{m}/clean" in columns]:
            keys = [f"{name}/{s.metric_name}" for s in self.attacks]
            if name == "mixture":
                keys += [f"mixture/adaptive_{name}" for name, _, _ in self.adaptive_attacks]
            robust = {key.split("/", 1)[1]: column(key) for key in keys}
            worst[name] = torch.stack(list(robust.values())).all(dim=0)
            summary["models"][name] = {
                "clean_acc": acc(column(f"{name}/clean")),
                "robust_acc": {k: acc(v) for k, v in robust.items()},
                "worst_robust_acc": acc(worst[name]),
            }
        if self.per_example:
            summary["per_example"] = {"index": column("index").tolist()} | {
                key: column(key).int().tolist() for key in columns if key.split("/")[0] in MODELS
            }
        if "robust" in worst and bool(worst["robust"].any()):
            # the keep fraction reached: of h's robust examples, the share the mixture keeps robust (MixedNUTS
            # calibrates for keep_fraction of them)
            summary["models"]["mixture"]["kept_of_robust_base"] = acc(worst["mixture"][worst["robust"]])
        summary["models"]["mixture"]["alpha_clean"] = column("alpha_clean").float().mean().item()
        summary["models"]["mixture"]["alpha_attacked"] = column("alpha_attacked").float().mean().item()
        if self.adaptive_attacks:
            summary["models"]["mixture"]["alpha_adaptive"] = column("alpha_adaptive").float().mean().item()
        summary["sweep"] = {
            "attack": self.attacks[self.sweep_attack_index].metric_name,
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
                SMOOTHED_BRANCH_METRIC,
                {
                    "certifies": SMOOTHED_BRANCH_CERTIFIES,
                    "sigma": self.smoothing_sigma,
                    "n0": self.n0,
                    "n": self.n,
                    "failure_prob": self.failure_prob,
                },
            ),
        ):
            if f"cert/{kind}/radius" not in columns:
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

    def evaluate_stage(self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataset: Dataset, stage: str) -> dict:
        mixture = find_mixture(pl_module)
        return self.evaluate(mixture, dataset, pl_module.num_classes, pl_module.bounds, pl_module.device)

    def metrics(self, summary: dict, stage: str) -> dict[str, float]:
        """Flat ``{metric name: value}`` of a summary (what is logged)."""
        log: dict[str, float] = {}
        for name, res in summary["models"].items():
            prefix = f"{stage}/mixture_eval/{name}"
            log[f"{prefix}/clean_acc"] = res["clean_acc"]
            for attack, value in res["robust_acc"].items():
                log[f"{prefix}/robust_acc/{attack}"] = value
            log[f"{prefix}/robust_acc/worst"] = res["worst_robust_acc"]
            for key in ("alpha_clean", "alpha_attacked", "alpha_adaptive", "kept_of_robust_base"):
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

    def figures(self, summary: dict, stage: str, epoch: int) -> dict[str, tuple[Figure, Any]]:
        if not summary["sweep"]["points"]:
            return {}
        return {"mixture_sweep": (sweep_figure(summary), summary["sweep"])}

    def print_summary(self, summary: dict, title: str) -> None:
        print_mixture_table(summary, title=title)

    def state_fields(self) -> dict[str, Any]:
        return {"stages": sorted(self.stages), "attacks": [a.metric_name for a in self.attacks]}
