"""Robustness and calibration of the training methods on the embedded digits, over several seeds, with paired tests.

Trains Standard, PGD-AT, TRADES, MART, TRADES-AWP, DRO-AT, GAIRAT, MAIL, AR-AdaLS and uniform label smoothing
with the same backbone, optimiser, number of epochs and, per seed, the same initial weights, then evaluates every
model on the same test set (270 images) and on corrupted copies of it (Gaussian noise and Gaussian blur at
several severities, seeded). MART and TRADES-AWP are run when ``robustlit.methods`` provides them, and skipped
with a note otherwise. The reweighting baselines (DRO-AT, GAIRAT, MAIL) share one base objective
(``--reweight-base``, default PGD-AT) and weight the term their papers weight (docs/reweighting.md).

Per method, seed and test set: clean accuracy | PGD-50 robust accuracy | worst-30%-class PGD robust accuracy |
ECE (15 bins) | optionally AutoAttack robust accuracy (``--autoattack``: slow on a CPU). The table shows
mean ± standard deviation over the seeds (3 by default, ``--seeds N`` for more) and marks the differences to the
reference method (``--reference``, default PGD-AT) that a paired t-test over seeds (scipy.stats.ttest_rel; the
same seed gives both methods the same initial weights, data order and test sets) finds significant at 5% after
Holm's correction over the methods compared; a second table lists every difference with its 95% confidence
interval and p-value. With 3 seeds only large, consistent differences can be significant; a difference that
is not marked is not evidence of no effect.

    python examples/compare_calibration.py                  # 3 seeds (see --help for the knobs)
    python examples/compare_calibration.py --seeds 5 --autoattack
    python examples/compare_calibration.py --quick          # seconds: a smoke test of the whole pipeline

With ``--json FILE`` the runs are written to FILE after every (seed, method); running the same command again
reuses the finished ones (same settings only), so a stopped ``make digits-table`` resumes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import Dataset, TensorDataset

import robustlit.methods as methods
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.calibration import CalibrationEvaluation, apply_shift, shift_seed
from robustlit.data import DigitsDataModule
from robustlit.experiments import mean_std, paired_tests
from robustlit.methods.ar_adals import ARAdaLS
from robustlit.methods.base import RobustClassifier
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.instance_reweighted import GAIRAT, MAIL
from robustlit.methods.label_smoothing import LabelSmoothing
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES
from robustlit.models import SmallCNN
from robustlit.utils.atomic import write_text_atomically

METHODS = (
    "Standard",
    "PGD-AT",
    "TRADES",
    "MART",
    "TRADES-AWP",
    "DRO-AT",
    "GAIRAT",
    "MAIL",
    "AR-AdaLS",
    "Label smoothing",
)
#: Methods another part of robustlit provides; run when present, skipped with a note otherwise.
OPTIONAL = ("MART", "TRADES-AWP")
SHIFTS = ("gaussian_noise", "gaussian_blur")
#: (key, column label, higher is better) of the metrics in the tables.
METRICS = (
    ("clean_acc", "clean acc", True),
    ("robust_acc", "PGD", True),
    ("worst30_robust_acc", "worst-30% cls robust", True),
    ("ece", "ECE", False),
)
ALPHA = 0.05


@dataclass
class Settings:
    """Everything that defines a run (printed with the table and written to the JSON)."""

    epochs: int = 30
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eps: float = 0.1
    train_steps: int = 5
    eval_steps: int = 50
    autoattack: bool = False
    reference: str = "PGD-AT"
    reweight_base: str = "pgd_at"
    width: int = 16
    hidden: int = 64
    lr: float = 2e-3
    batch_size: int = 64
    beta: float = 6.0
    mail_beta: float = 5.0
    temperature: float = 2.0
    momentum: float = 0.1
    gairat_begin_fraction: float = 0.5
    mail_begin_fraction: float = 0.625
    smoothing: float = 0.1
    adals_bins: int = 5
    adals_max_radius: float = 0.3
    adals_bisection_steps: int = 6
    adals_score_steps: int = 5
    adals_smoothing_step_size: float = 1.0
    adals_rescore_every: int = 5
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    num_test: int | None = None
    limit_train_batches: int | None = None


def quick_settings() -> Settings:
    """A seconds-long configuration that exercises every code path, two seeds (numbers are not meaningful)."""
    return Settings(
        epochs=2,
        seeds=[0, 1],
        train_steps=2,
        eval_steps=3,
        width=8,
        hidden=16,
        adals_bisection_steps=2,
        adals_score_steps=2,
        adals_rescore_every=1,
        severities=[3],
        num_test=48,
        limit_train_batches=3,
    )


def _optional_factory(name: str) -> Callable[..., RobustClassifier] | None:
    """MART / TRADES-AWP if ``robustlit.methods`` provides them (another part of robustlit adds them)."""
    if name == "MART":
        return getattr(methods, "MART", None)
    for class_name in ("TRADESAWP", "TRADES_AWP", "AWPTRADES"):
        if (cls := getattr(methods, class_name, None)) is not None:
            return cls
    if "awp" in inspect.signature(TRADES.__init__).parameters:  # AWP as a TRADES option, its own default strength
        return lambda **kw: TRADES(**kw, awp=True)
    return None


def available(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The methods that can run now, and a note for each optional method that is absent."""
    present, skipped = [], {}
    for name in names:
        if name in OPTIONAL and _optional_factory(name) is None:
            skipped[name] = f"skipped: robustlit.methods has no {name} in this checkout"
        else:
            present.append(name)
    return present, skipped


def build(name: str, s: Settings, seed: int) -> RobustClassifier:
    """The method ``name`` with the shared backbone and optimiser (same initial weights for every method)."""
    pl.seed_everything(seed, verbose=False)
    common = {
        "backbone": SmallCNN(10, 1, width=s.width, hidden=s.hidden),
        "mean": DigitsDataModule.mean,
        "std": DigitsDataModule.std,
        "optimizer": lambda params: torch.optim.Adam(params, lr=s.lr),
    }
    threat = {"eps": s.eps, "step_size": 2.5 * s.eps / s.train_steps, "steps": s.train_steps}
    base = {"base_loss": s.reweight_base, "beta": s.beta}
    factories: dict[str, Callable[[], RobustClassifier]] = {
        "Standard": lambda: Standard(**common),
        "PGD-AT": lambda: PGDAT(**threat, **common),
        "TRADES": lambda: TRADES(beta=s.beta, **threat, **common),
        "MART": lambda: _optional_factory("MART")(**threat, **common),  # its own default beta
        "TRADES-AWP": lambda: _optional_factory("TRADES-AWP")(beta=s.beta, **threat, **common),
        "DRO-AT": lambda: DROAdversarialTraining(
            temperature=s.temperature, momentum=s.momentum, **base, **threat, **common
        ),
        "GAIRAT": lambda: GAIRAT(begin_epoch=int(s.gairat_begin_fraction * s.epochs), **base, **threat, **common),
        "MAIL": lambda: MAIL(
            begin_epoch=int(s.mail_begin_fraction * s.epochs),
            **{**base, "beta": s.mail_beta},
            **threat,
            **common,
        ),
        "AR-AdaLS": lambda: ARAdaLS(
            num_bins=s.adals_bins,
            score_method="bisection",
            max_radius=s.adals_max_radius,
            bisection_steps=s.adals_bisection_steps,
            steps=s.adals_score_steps,
            smoothing_step_size=s.adals_smoothing_step_size,
            rescore_every_n_epochs=s.adals_rescore_every,
            tie_break_seed=seed,
            **common,
        ),
        "Label smoothing": lambda: LabelSmoothing(smoothing=s.smoothing, **common),
    }
    return factories[name]()


def train(module: RobustClassifier, s: Settings, seed: int) -> float:
    """Fit for ``s.epochs`` epochs (validation every epoch: AR-AdaLS updates its bins there); returns seconds."""
    pl.seed_everything(seed, verbose=False)
    trainer = pl.Trainer(
        max_epochs=s.epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
        limit_train_batches=s.limit_train_batches,
    )
    start = time.perf_counter()
    trainer.fit(module, DigitsDataModule(batch_size=s.batch_size, seed=seed))
    return time.perf_counter() - start


def test_sets(s: Settings, seed: int) -> dict[str, Dataset]:
    """The clean test set and its seeded corrupted copies, keyed ``clean`` / ``<shift>_s<severity>``."""
    data = DigitsDataModule()
    data.setup()
    x, y = data.test_dataset.tensors
    if s.num_test is not None:
        x, y = x[: s.num_test], y[: s.num_test]
    sets: dict[str, Dataset] = {"clean": TensorDataset(x, y)}
    for k, shift in enumerate(SHIFTS):
        for severity in s.severities:
            shifted = apply_shift(x, shift, severity, shift_seed(seed, 0, k, severity))
            sets[f"{shift}_s{severity}"] = TensorDataset(shifted, y)
    return sets


def attack_specs(s: Settings, autoattack: bool) -> list[AttackSpec]:
    """PGD (torchattacks, one random start), then standard AutoAttack when ``autoattack``."""
    specs = [AttackSpec(name="pgd", norm="Linf", eps=s.eps, steps=s.eval_steps, step_size=2.5 * s.eps / s.eval_steps)]
    if autoattack:
        specs.append(AttackSpec(name="autoattack", norm="Linf", eps=s.eps))
    return specs


def evaluate(module: RobustClassifier, sets: dict[str, Dataset], s: Settings, seed: int) -> dict[str, dict]:
    """Clean accuracy, PGD robust accuracy, worst-30%-class robust accuracy and ECE per set; AutoAttack on the
    clean test set only (``s.autoattack``: on a CPU it costs several times PGD-50, and the shifted copies
    report calibration)."""
    calibration = CalibrationEvaluation(num_examples=None, reliability_diagram=False, print_table=False)
    model, device = module.classifier.eval(), torch.device("cpu")
    out = {}
    for name, dataset in sets.items():
        specs = attack_specs(s, s.autoattack and name == "clean")
        attack = AdversarialEvaluation(specs, num_examples=None, seed=seed, print_table=False)
        attacks = attack.evaluate(model, dataset, module.num_classes, module.bounds, device)["attacks"]
        robust = attacks[specs[0].metric_name]
        cal = calibration.evaluate(model, dataset, module.bounds, device)["conditions"]["clean"]
        out[name] = {
            "clean_acc": cal["acc"],
            "robust_acc": robust["robust_acc"],
            "worst30_robust_acc": robust["worst_fraction_robust_acc"],
            "ece": cal["ece"],
            "nll": cal["nll"],
            "brier": cal["brier"],
        }
        if len(specs) > 1:
            out[name]["autoattack_acc"] = attacks[specs[1].metric_name]["robust_acc"]
    return out


def adals_state(module: ARAdaLS) -> dict[str, list]:
    """AR-AdaLS's learned per-bin smoothing, its bin edges, occupancies and last validation gaps (rounded)."""
    metrics = module.trainer.callback_metrics
    gaps = [metrics.get(f"adals/gap/bin_{r}") for r in range(module.num_bins)]
    occupancy = torch.bincount(module.train_bins[module.train_bins >= 0], minlength=module.num_bins)
    return {
        "smoothing": [round(v, 3) for v in module.schedule.smoothing.tolist()],
        "edges": [round(v, 3) for v in module.schedule.edges.tolist()],
        "train_occupancy": occupancy.tolist(),
        "gaps": [None if g is None else round(float(g), 3) for g in gaps],
    }


def summarise(per_set: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """In-distribution numbers and the mean over all shifted copies."""
    shifted = [v for k, v in per_set.items() if k != "clean"]
    mean = {key: sum(v[key] for v in shifted) / len(shifted) for key in shifted[0]}
    return {"in_distribution": per_set["clean"], "under_shift": mean}


def metrics_of(s: Settings, part: str = "in_distribution") -> list[tuple[str, str, bool]]:
    """(key, label, higher is better) of the columns of ``part``; AutoAttack is run in distribution only."""
    spec = f"PGD-{s.eval_steps} Linf eps={s.eps:g}"
    rows = [(key, spec if key == "robust_acc" else label, up) for key, label, up in METRICS]
    if s.autoattack and part == "in_distribution":
        rows.insert(2, ("autoattack_acc", f"AutoAttack eps={s.eps:g}", True))
    return rows


def paired_statistics(runs: dict[int, dict[str, dict]], s: Settings) -> dict:
    """Mean and std over seeds of every metric, and paired differences to the reference method.

    For each (part, metric) the difference d_k = method − reference on seed k is tested with a paired t-test
    over the seeds, with the 95% t confidence interval of mean(d); the p-values of the methods are
    Holm-corrected together, and ``significant`` means corrected p < 5% (:func:`robustlit.experiments.paired_tests`).
    A difference that is the same on every seed has no variance estimate: it gets p = nan and is not tested.
    """
    seeds = sorted(runs)
    names = list(runs[seeds[0]])
    summary: dict = {"seeds": seeds, "reference": s.reference, "methods": {}, "differences": {}}
    for name in names:
        summary["methods"][name] = {
            part: {key: mean_std([runs[k][name][part][key] for k in seeds]) for key, _, _ in metrics_of(s, part)}
            for part in ("in_distribution", "under_shift")
        }
    if s.reference not in names or len(seeds) < 2:
        return summary
    for part in ("in_distribution", "under_shift"):
        for key, _, _ in metrics_of(s, part):
            values = {name: summary["methods"][name][part][key]["values"] for name in names}
            summary["differences"].setdefault(part, {})[key] = paired_tests(values, s.reference, ALPHA)
    return summary


def _cell(key: str, stat: dict) -> str:
    """mean ± std (percent for accuracies); one seed has no std."""
    one = math.isnan(stat["std"])
    if key == "ece":
        return f"{stat['mean']:.4f}" + ("" if one else f" ± {stat['std']:.4f}")
    return f"{100 * stat['mean']:.1f}" + ("%" if one else f" ± {100 * stat['std']:.1f}%")


def print_tables(summary: dict, s: Settings, skipped: dict[str, str], console: Console | None = None) -> None:
    console = console or Console(width=240)
    seeds = summary["seeds"]
    columns = {part: metrics_of(s, part) for part in ("in_distribution", "under_shift")}
    table = Table(
        title=f"digits, {s.epochs} epochs each, seeds {seeds}: mean ± std over {len(seeds)} seeds "
        f"(test set; shift = mean over {', '.join(SHIFTS)} at severities {s.severities}); "
        f"* = differs from {s.reference}, paired t-test over seeds, Holm-corrected p < {ALPHA:g}"
    )
    table.add_column("method")
    for group, part in (("", "in_distribution"), ("shift: ", "under_shift")):
        for _, label, _ in columns[part]:
            table.add_column(group + label, justify="right")
    differences = summary["differences"]
    for name, parts in summary["methods"].items():
        cells = [name + (" (reference)" if name == s.reference else "")]
        for part in ("in_distribution", "under_shift"):
            for key, _, _ in columns[part]:
                mark = differences.get(part, {}).get(key, {}).get(name, {}).get("significant", False)
                cells.append(_cell(key, parts[part][key]) + (" *" if mark else ""))
        table.add_row(*cells)
    console.print(table)
    for name, note in skipped.items():
        console.print(f"{name}: {note}")
    if not differences:
        console.print(f"(no paired tests: {len(seeds)} seed(s) or no {s.reference} row)")
        return
    detail = Table(title=f"differences to {s.reference} (method − reference): mean [95% CI], paired t-test p, Holm p")
    detail.add_column("method")
    detail.add_column("metric")
    detail.add_column("in distribution", justify="right")
    detail.add_column("under shift", justify="right")
    significant, not_significant = [], []
    for name in summary["methods"]:
        if name == s.reference:
            continue
        for key, label, _ in columns["in_distribution"]:
            cells = [name, label]
            for part in ("in_distribution", "under_shift"):
                if key not in differences[part]:
                    cells.append("not run")
                    continue
                row = differences[part][key][name]
                scale = 1 if key == "ece" else 100
                unit = "" if key == "ece" else " pt"
                lo, hi = (scale * v for v in row["ci95"])
                test = (
                    "same on every seed: not tested"
                    if math.isnan(row["p"])
                    else f"p={row['p']:.2g} Holm={row['p_holm']:.2g}{' *' if row['significant'] else ''}"
                )
                cells.append(f"{scale * row['mean']:+.3g}{unit} [{lo:+.3g}, {hi:+.3g}] {test}")
                (significant if row["significant"] else not_significant).append(f"{name} {label} ({part})")
            detail.add_row(*cells)
    console.print(detail)
    console.print(
        f"Significant at {ALPHA:g} (Holm over methods, paired over {len(seeds)} seeds): "
        + (", ".join(significant) if significant else "none")
        + f". Not significant: {len(not_significant)} differences (with {len(seeds)} seeds a small difference "
        "cannot be told from seed-to-seed noise; not significant is not evidence of equality)."
    )
    for name, parts in summary.get("adals", {}).items():
        console.print(f"AR-AdaLS seed {name}: {parts}")


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of every method (default 30)")
    parser.add_argument("--quick", action="store_true", help="tiny settings, 2 seeds: a smoke test in seconds")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 3; 2 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + N - 1")
    parser.add_argument("--eps", type=float, default=None, help="Linf radius of training and evaluation (default 0.1)")
    parser.add_argument("--temperature", type=float, default=None, help="DRO temperature r (default 2; <= 0 means inf)")
    parser.add_argument("--autoattack", action="store_true", help="also AutoAttack every model (slow on a CPU)")
    parser.add_argument("--reference", choices=METHODS, default="PGD-AT", help="method the differences are to")
    parser.add_argument(
        "--reweight-base", choices=("pgd_at", "trades"), default="pgd_at", help="base objective of DRO-AT/GAIRAT/MAIL"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs, summary and settings here")
    args = parser.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error("--seeds must be >= 1")
        s.seeds = list(range(args.seeds))
    s.seeds = [args.first_seed + k for k in range(len(s.seeds))]
    if args.epochs is not None:
        s.epochs = args.epochs
    if args.eps is not None:
        s.eps = args.eps
    if args.temperature is not None:
        s.temperature = math.inf if args.temperature <= 0 else args.temperature
    s.autoattack, s.reference, s.reweight_base = args.autoattack, args.reference, args.reweight_base
    return s, args


def finished_runs(path: Path | None, s: Settings) -> tuple[dict[int, dict[str, dict]], dict[int, dict]]:
    """Runs (and AR-AdaLS states) already in ``path`` from an interrupted or earlier run with the same settings.

    The JSON is rewritten after every (seed, method), so a long ``make digits-table`` that is stopped loses at
    most the method it was training. Other settings: nothing is reused (the file is overwritten at the end).
    """
    if path is None or not path.is_file():
        return {}, {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"{path}: unreadable ({error}); starting from scratch", file=sys.stderr)
        return {}, {}
    if stored.get("settings") != json.loads(json.dumps(asdict(s))):
        print(f"{path} holds runs with other settings; not reused", file=sys.stderr)
        return {}, {}
    runs = {int(seed): methods for seed, methods in stored.get("runs", {}).items()}
    adals = {int(seed): state for seed, state in stored.get("summary", {}).get("adals", {}).items()}
    return runs, adals


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns ``{"settings", "runs": {seed: {method: row}}, "summary", "skipped"}``."""
    s, args = parse(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(is an instance of `nn.Module`|LeafSpec|smaller than the logging).*")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names, skipped = available(args.methods)
    previous, previous_adals = finished_runs(args.json, s)
    runs: dict[int, dict[str, dict]] = {}
    adals: dict[int, dict] = {}
    for seed in s.seeds:
        sets = test_sets(s, seed)
        runs[seed] = {}
        for name in names:
            if name in previous.get(seed, {}):
                runs[seed][name] = previous[seed][name]
                if seed in previous_adals and name == "AR-AdaLS":
                    adals[seed] = previous_adals[seed]
                print(f"seed {seed} {name}: reused from {args.json}", file=sys.stderr)
                continue
            module = build(name, s, seed)
            seconds = train(module, s, seed)
            start = time.perf_counter()
            runs[seed][name] = {"train_seconds": seconds, **summarise(evaluate(module, sets, s, seed))}
            if isinstance(module, ARAdaLS):
                adals[seed] = adals_state(module)
            print(
                f"seed {seed} {name}: trained in {seconds:.0f} s, evaluated in {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )
            if args.json is not None:  # after every method: an interrupted run resumes from here
                partial = {"settings": asdict(s), "runs": runs, "summary": {"adals": adals}, "complete": False}
                _write_json(args.json, partial)
    summary = paired_statistics(runs, s)
    summary["adals"] = adals
    print_tables(summary, s, skipped)
    result = {"settings": asdict(s), "runs": runs, "summary": summary, "skipped": skipped, "complete": True}
    if args.json is not None:
        _write_json(args.json, result)
    return result


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON, atomically: a stopped run never leaves a half-written file."""
    write_text_atomically(path, json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
