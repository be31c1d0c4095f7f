"""Calibration under distribution shift on MNIST: Standard, label smoothing, temperature scaling and AR-AdaLS.

Qin, Wang, Beutel and Chi (NeurIPS 2021) claim that AR-AdaLS, label smoothing adapted per robustness bin, is
better calibrated than standard training, in distribution and most of all under distribution shift. Their
protocol, as far as it carries over to MNIST on a CPU (docs/calibration_mnist.md):

- four methods with the same backbone, optimiser, epochs and, per seed, the same initial weights and data
  order: **Standard** (cross-entropy), **Label smoothing** (uniform, 0.1), **Temperature scaling** (the
  Standard model of the same seed with one temperature fitted on the validation split by NLL, Guo et al.
  2017: the cheap post-hoc baseline), **AR-AdaLS** (robustlit's ``ARAdaLS``; its smoothing is updated on the
  same validation split);
- a regime where standard training is over-confident, chosen on the validation split only
  (``--select-regime`` trains Standard on training subsets of several sizes and reports its validation
  accuracy, ECE and mean confidence minus accuracy; the chosen size and epochs are the defaults below);
- the full 10,000 MNIST test images, clean and under an MNIST-C-style set of shifts made here
  (:mod:`robustlit.metrics.shift`: Gaussian and shot noise, Gaussian blur, contrast, rotation; severities
  1..5, noise seeded per seed and shift);
- per method, seed and condition: accuracy, ECE (torchmetrics, 15 bins), NLL, Brier, mean confidence;
  mean ± std over seeds; paired t-tests over seeds with Holm's correction (:mod:`robustlit.experiments`)
  against Standard, and AR-AdaLS against each baseline; a reliability diagram and an ECE-vs-severity figure.

    python examples/mnist_calibration.py --select-regime        # the validation check behind the regime
    python examples/mnist_calibration.py                        # 3 seeds -> runs/mnist_calibration.json
    python examples/mnist_calibration.py --quick                # seconds: every code path, meaningless numbers

Resumable: the JSON is rewritten after every (seed, method); the same command reuses the finished runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from robustlit.callbacks.calibration import calibration_metrics
from robustlit.experiments import RunStore, mean_std, paired_tests
from robustlit.experiments.mnist_data import TensorSplitsDataModule, mnist_splits, training_subset
from robustlit.experiments.paired import verdict
from robustlit.experiments.training import fit, quiet_lightning
from robustlit.methods.ar_adals import ARAdaLS
from robustlit.methods.base import RobustClassifier
from robustlit.methods.label_smoothing import LabelSmoothing
from robustlit.methods.standard import Standard
from robustlit.metrics.calibration import reliability_bins
from robustlit.metrics.shift import SHIFT_NAMES, corrupt
from robustlit.models import MLP
from robustlit.models.temperature_scaling import TemperatureScaled, fit_temperature

METHODS = ("Standard", "Label smoothing", "Temperature scaling", "AR-AdaLS")
TRAINED = ("Standard", "Label smoothing", "AR-AdaLS")  # temperature scaling reuses Standard's weights
#: (key, label, higher is better)
METRICS = (("acc", "accuracy", True), ("ece", "ECE", False), ("nll", "NLL", False), ("brier", "Brier", False))
PARTS = ("in_distribution", "under_shift")


@dataclass
class Settings:
    """Everything that defines a run (written to the JSON; a stored run is reused only with equal settings)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train_size: int | None = 2000
    epochs: int = 100
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 1e-3
    batch_size: int = 128
    smoothing: float = 0.1
    adals_bins: int = 10
    adals_max_radius: float = 0.3
    adals_bisection_steps: int = 6
    adals_score_steps: int = 5
    adals_smoothing_step_size: float = 1.0
    adals_rescore_every: int = 5
    shifts: list[str] = field(default_factory=lambda: list(SHIFT_NAMES))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    num_val: int | None = None
    num_test: int | None = None
    n_bins: int = 15


def quick_settings() -> Settings:
    """Seconds: two seeds, tiny sets, two epochs (numbers are not meaningful)."""
    return Settings(
        seeds=[0, 1],
        train_size=256,
        epochs=2,
        hidden=[32],
        adals_bins=2,
        adals_bisection_steps=2,
        adals_score_steps=2,
        adals_rescore_every=1,
        severities=[3],
        num_val=200,
        num_test=300,
    )


# ---- data -----------------------------------------------------------------------------------------------
def splits(s: Settings, seed: int, root: str) -> dict[str, tuple[Tensor, Tensor]]:
    """Train (the seeded subset of ``train_size``), validation (first ``num_val``) and test (first ``num_test``)."""
    full = mnist_splits(root)
    x, y = training_subset(*full["train"], s.train_size, seed)
    val = tuple(t[: s.num_val] for t in full["val"])
    test = tuple(t[: s.num_test] for t in full["test"])
    return {"train": (x, y), "val": val, "test": test}  # type: ignore[dict-item]


def shift_seed(seed: int, shift: str, severity: int) -> int:
    """Seed of one (seed, shift, severity) noise draw: fixed by the run seed, never by the method."""
    return 1_000_003 * seed + 7919 * SHIFT_NAMES.index(shift) + 104_729 * severity


def shifted_sets(x: Tensor, s: Settings, seed: int) -> dict[str, Tensor]:
    """``clean`` and ``<shift>_s<severity>`` copies of the test images (the same for every method of a seed)."""
    sets = {"clean": x}
    for shift in s.shifts:
        for severity in s.severities:
            sets[f"{shift}_s{severity}"] = corrupt(x, shift, severity, shift_seed(seed, shift, severity))
    return sets


# ---- methods --------------------------------------------------------------------------------------------
def build(name: str, s: Settings, seed: int) -> RobustClassifier:
    """``name`` with the shared backbone, optimiser and (seeded) initial weights."""
    pl.seed_everything(seed, verbose=False)
    common = {
        "backbone": MLP(784, 10, s.hidden),
        "mean": (0.1307,),
        "std": (0.3081,),
        "optimizer": lambda params: torch.optim.Adam(params, lr=s.lr),
    }
    if name == "Standard":
        return Standard(**common)
    if name == "Label smoothing":
        return LabelSmoothing(smoothing=s.smoothing, **common)
    if name == "AR-AdaLS":
        return ARAdaLS(
            num_bins=s.adals_bins,
            score_method="bisection",
            max_radius=s.adals_max_radius,
            bisection_steps=s.adals_bisection_steps,
            steps=s.adals_score_steps,
            smoothing_step_size=s.adals_smoothing_step_size,
            rescore_every_n_epochs=s.adals_rescore_every,
            tie_break_seed=seed,
            **common,
        )
    raise ValueError(f"unknown trained method {name!r}")


def config_of(module: RobustClassifier) -> dict[str, str]:
    """The flattened hyperparameters of a built method, for the printed like-for-like diff."""
    return {"class": type(module).__name__, **{k: repr(v) for k, v in sorted(module.hparams.items())}}


def config_diff(a: RobustClassifier, b: RobustClassifier) -> dict[str, tuple[str | None, str | None]]:
    """Hyperparameters that differ between two built methods (the backbone compared by its weights)."""
    ca, cb = config_of(a), config_of(b)
    diff = {k: (ca.get(k), cb.get(k)) for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k) and k != "backbone"}
    same_init = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    if not same_init:
        diff["initial weights"] = ("seeded", "different")
    return diff


# ---- evaluation -----------------------------------------------------------------------------------------
@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    model.eval()
    return torch.cat([model(chunk).float() for chunk in x.split(batch_size)])


def metrics_of(probs: Tensor, y: Tensor, n_bins: int) -> dict[str, float]:
    """Accuracy, ECE, NLL, Brier (:func:`calibration_metrics`) and the mean top-label confidence."""
    row = calibration_metrics(probs, y, n_bins)
    row["confidence"] = probs.max(dim=1).values.double().mean().item()
    return row


def evaluate(model: nn.Module, sets: dict[str, Tensor], y: Tensor, s: Settings) -> dict:
    """Metrics and reliability bins of every condition; means in distribution, under shift and per shift."""
    conditions, bins = {}, {}
    for name, x in sets.items():
        probs = logits_of(model, x).softmax(dim=1)
        conditions[name] = metrics_of(probs, y, s.n_bins)
        conf, acc, count = reliability_bins(probs, y, s.n_bins)
        bins[name] = {"confidence": conf.tolist(), "accuracy": acc.tolist(), "count": count.tolist()}
    shifted = [v for k, v in conditions.items() if k != "clean"]
    keys = list(conditions["clean"])
    out = {
        "in_distribution": conditions["clean"],
        "under_shift": {k: sum(v[k] for v in shifted) / len(shifted) for k in keys},
        "conditions": conditions,
        "bins": bins,
    }
    return out


def adals_state(module: ARAdaLS) -> dict[str, list]:
    occupancy = torch.bincount(module.train_bins[module.train_bins >= 0], minlength=module.num_bins)
    return {
        "smoothing": [round(v, 4) for v in module.schedule.smoothing.tolist()],
        "edges": [round(v, 4) for v in module.schedule.edges.tolist()],
        "train_occupancy": occupancy.tolist(),
    }


def run_seed(s: Settings, seed: int, store: RunStore, root: str) -> None:
    """Train and evaluate every method of one seed that is not in the store yet."""
    data = splits(s, seed, root)
    test_x, test_y = data["test"]
    sets = shifted_sets(test_x, s, seed)
    for name in TRAINED:
        done = store.get(seed, name) is not None
        if done and (name != "Standard" or store.get(seed, "Temperature scaling") is not None):
            print(f"seed {seed} {name}: reused", file=sys.stderr)
            continue
        module = build(name, s, seed)
        datamodule = TensorSplitsDataModule(data, batch_size=s.batch_size, seed=seed)
        validate_every = 1 if name == "AR-AdaLS" else max(s.epochs, 1)
        seconds = fit(module, datamodule, s.epochs, seed, val_every_n_epochs=validate_every)
        start = time.perf_counter()
        row = {"train_seconds": seconds, **evaluate(module.classifier, sets, test_y, s)}
        if isinstance(module, ARAdaLS):
            row["adals"] = adals_state(module)
        row["eval_seconds"] = time.perf_counter() - start
        store.put(seed, name, row)
        print(
            f"seed {seed} {name}: trained in {seconds:.0f} s, evaluated in {row['eval_seconds']:.0f} s", file=sys.stderr
        )
        if name == "Standard":
            start = time.perf_counter()
            val_x, val_y = data["val"]
            temperature = fit_temperature(logits_of(module.classifier, val_x), val_y)
            scaled = TemperatureScaled(module.classifier, temperature)
            ts_row = {"train_seconds": seconds, "temperature": temperature, **evaluate(scaled, sets, test_y, s)}
            ts_row["eval_seconds"] = time.perf_counter() - start
            store.put(seed, "Temperature scaling", ts_row)
            print(f"seed {seed} Temperature scaling: T = {temperature:.3f} (fitted on validation)", file=sys.stderr)


# ---- statistics and tables ------------------------------------------------------------------------------
def summarise(runs: dict[int, dict[str, dict]], s: Settings) -> dict:
    """Mean ± std per (method, part, metric), per shift and severity for ECE/accuracy, and two test families:
    every method against Standard, and every baseline against AR-AdaLS (Holm within each family)."""
    seeds = sorted(runs)
    names = [m for m in METHODS if all(m in runs[k] for k in seeds)]
    summary: dict = {"seeds": seeds, "methods": {}, "conditions": {}, "tests": {}}
    for name in names:
        summary["methods"][name] = {
            part: {key: mean_std([runs[k][name][part][key] for k in seeds]) for key, _, _ in METRICS} for part in PARTS
        }
        conditions = runs[seeds[0]][name]["conditions"]
        summary["conditions"][name] = {
            cond: {key: mean_std([runs[k][name]["conditions"][cond][key] for k in seeds]) for key in ("acc", "ece")}
            for cond in conditions
        }
    if len(seeds) < 2:
        return summary
    # secondary, descriptive: ECE per shift (mean over its severities) against Standard, Holm within each shift
    summary["per_shift_tests"] = {}
    for shift in s.shifts:
        per_seed = {
            name: [
                sum(runs[k][name]["conditions"][f"{shift}_s{v}"]["ece"] for v in s.severities) / len(s.severities)
                for k in seeds
            ]
            for name in names
        }
        summary["per_shift_tests"][shift] = {
            "ece": {name: mean_std(v) for name, v in per_seed.items()},
            "vs_standard": paired_tests(per_seed, "Standard") if "Standard" in names else {},
        }
    for reference in ("Standard", "AR-AdaLS"):
        if reference not in names:
            continue
        family = summary["tests"].setdefault(reference, {})
        for part in PARTS:
            for key, _, _ in METRICS:
                values = {name: summary["methods"][name][part][key]["values"] for name in names}
                family.setdefault(part, {})[key] = paired_tests(values, reference)
    return summary


def _cell(key: str, stat: dict) -> str:
    one = math.isnan(stat["std"])
    if key == "acc":
        return f"{100 * stat['mean']:.2f}" + ("" if one else f" ± {100 * stat['std']:.2f}")
    return f"{stat['mean']:.4f}" + ("" if one else f" ± {stat['std']:.4f}")


def print_tables(summary: dict, s: Settings, console: Console | None = None) -> None:
    console = console or Console(width=200)
    seeds = summary["seeds"]
    size = "all 55,000" if s.train_size is None else f"{s.train_size:,}"
    table = Table(
        title=f"MNIST calibration: MLP {s.hidden}, {size} training images, {s.epochs} epochs; mean ± std over seeds "
        f"{seeds}; shift = mean over {len(s.shifts)} shifts x severities {s.severities}; "
        "* = differs from Standard (paired t-test, Holm)"
    )
    table.add_column("method")
    for part in PARTS:
        for _, label, _ in METRICS:
            table.add_column(("shift: " if part == "under_shift" else "") + label, justify="right")
    tests = summary["tests"].get("Standard", {})
    for name, parts in summary["methods"].items():
        cells = [name]
        for part in PARTS:
            for key, _, _ in METRICS:
                mark = tests.get(part, {}).get(key, {}).get(name, {}).get("significant", False)
                cells.append(_cell(key, parts[part][key]) + (" *" if mark else ""))
        table.add_row(*cells)
    console.print(table)
    for reference, family in summary["tests"].items():
        detail = Table(title=f"differences to {reference} (method − {reference}): mean [95% CI], Holm p")
        for column in ("method", "metric", "in distribution", "under shift"):
            detail.add_column(column, justify="left" if column in ("method", "metric") else "right")
        for name in summary["methods"]:
            if name == reference:
                continue
            for key, label, _ in METRICS:
                cells = [name, label]
                for part in PARTS:
                    row = family[part][key][name]
                    scale = 100 if key == "acc" else 1
                    lo, hi = (scale * v for v in row["ci95"])
                    test = "not tested" if math.isnan(row["p"]) else f"Holm p={row['p_holm']:.2g}"
                    star = " *" if row["significant"] else ""
                    cells.append(f"{scale * row['mean']:+.4g} [{lo:+.4g}, {hi:+.4g}] {test}{star}")
                detail.add_row(*cells)
        console.print(detail)
    per_shift = Table(
        title="ECE per shift (mean over severities), mean ± std; vs Standard: difference [95% CI], Holm "
        "within the shift (secondary, descriptive)"
    )
    per_shift.add_column("shift")
    names = list(summary["methods"])
    for name in names:
        per_shift.add_column(name, justify="right")
    for shift, block in summary.get("per_shift_tests", {}).items():
        cells = []
        for name in names:
            cell = _cell("ece", block["ece"][name])
            row = block["vs_standard"].get(name)
            if row is not None:
                lo, hi = row["ci95"]
                cell += f"\n{row['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (" *" if row["significant"] else "")
            cells.append(cell)
        per_shift.add_row(shift, *cells)
    console.print(per_shift)
    claims = claim_verdicts(summary)
    for line in claims:
        console.print(line)


def claim_verdicts(summary: dict) -> list[str]:
    """Qin et al.'s claim (AR-AdaLS lowers ECE, in distribution and under shift) against each baseline."""
    lines = []
    family = summary["tests"].get("AR-AdaLS", {})
    for part in PARTS:
        for baseline in ("Standard", "Label smoothing", "Temperature scaling"):
            row = family.get(part, {}).get("ece", {}).get(baseline)
            if row is None:
                continue
            # the family holds baseline − AR-AdaLS, so "AR-AdaLS has the lower ECE" is a positive difference
            lo, hi = row["ci95"]
            lines.append(
                f"claim 'AR-AdaLS has a lower ECE than {baseline}' ({part.replace('_', ' ')}): AR-AdaLS − {baseline} "
                f"= {-row['mean']:+.4f} [{-hi:+.4f}, {-lo:+.4f}] -> {verdict(row, higher_is_better=True)}"
            )
    return lines


# ---- figures --------------------------------------------------------------------------------------------
def pooled_bins(runs: dict[int, dict[str, dict]], name: str, condition: str) -> tuple[Tensor, Tensor, Tensor]:
    """Reliability bins pooled over seeds (count-weighted)."""
    conf = acc = count = None
    for rows in runs.values():
        b = rows[name]["bins"][condition]
        c = torch.tensor(b["count"], dtype=torch.float64)
        wc, wa = torch.tensor(b["confidence"], dtype=torch.float64) * c, torch.tensor(b["accuracy"]) * c
        conf, acc, count = (wc, wa, c) if count is None else (conf + wc, acc + wa, count + c)
    denom = count.clamp_min(1.0)
    return conf / denom, acc / denom, count


def reliability_figure(runs: dict[int, dict[str, dict]], names: list[str], conditions: list[str]) -> Figure:
    """Accuracy against confidence per method (columns) and condition (rows), pooled over seeds."""
    fig = Figure(figsize=(3.2 * len(names), 3.2 * len(conditions)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(conditions), len(names), squeeze=False)
    for i, condition in enumerate(conditions):
        for j, name in enumerate(names):
            ax = axes[i][j]
            conf, acc, count = pooled_bins(runs, name, condition)
            n_bins = count.numel()
            left = torch.arange(n_bins, dtype=torch.float64) / n_bins
            used = count > 0
            lefts, accs = left[used].tolist(), acc[used].tolist()
            ax.bar(lefts, accs, width=1 / n_bins, align="edge", color="tab:blue", edgecolor="black", label="accuracy")
            gaps = [c - a for c, a in zip(conf[used].tolist(), accs, strict=True)]
            ax.bar(
                lefts,
                gaps,
                bottom=accs,
                width=1 / n_bins,
                align="edge",
                color="tab:red",
                alpha=0.3,
                hatch="//",
                edgecolor="tab:red",
                label="mean confidence - accuracy",
            )
            ax.plot([0, 1], [0, 1], "--", color="gray")
            eces = [rows[name]["conditions"][condition]["ece"] for rows in runs.values()]
            ax.set_title(f"{name}\n{condition}: ECE {sum(eces) / len(eces):.3f}", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            if i == len(conditions) - 1:
                ax.set_xlabel("confidence")
            if j == 0:
                ax.set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def severity_figure(summary: dict, s: Settings) -> Figure:
    """ECE against severity, one panel per shift plus their mean, one line per method (mean ± std over seeds)."""
    panels = [*s.shifts, "mean over shifts"]
    fig = Figure(figsize=(3.2 * len(panels), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for name, conditions in summary["conditions"].items():
            xs, means, stds = [0], [conditions["clean"]["ece"]["mean"]], [conditions["clean"]["ece"]["std"]]
            for severity in s.severities:
                shifts = s.shifts if panel == "mean over shifts" else [panel]
                values = [conditions[f"{sh}_s{severity}"]["ece"]["values"] for sh in shifts]
                per_seed = [sum(v[k] for v in values) / len(values) for k in range(len(values[0]))]
                stat = mean_std(per_seed)
                xs.append(severity)
                means.append(stat["mean"])
                stds.append(stat["std"])
            stds = [0.0 if math.isnan(v) else v for v in stds]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name)
        ax.set_title(panel)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("ECE")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- the validation check behind the regime ------------------------------------------------------------
def select_regime(s: Settings, root: str, candidates: list[tuple[int | None, int]], out: Path) -> dict:
    """Train Standard (seed 0) on each (training-set size, epochs) and measure it on the *validation* split, clean
    and rotated by 45 degrees: accuracy, ECE, mean confidence − accuracy. The test split is not read."""
    full = mnist_splits(root)
    val_x, val_y = full["val"]
    rotated = corrupt(val_x, "rotate", 3)
    rows = []
    for size, epochs in candidates:
        trial = Settings(**{**asdict(s), "train_size": size, "epochs": epochs, "seeds": [0]})
        data = {"train": training_subset(*full["train"], size, 0), "val": full["val"], "test": full["val"]}
        module = build("Standard", trial, 0)
        seconds = fit(module, TensorSplitsDataModule(data, batch_size=s.batch_size, seed=0), epochs, 0, epochs)
        row = {"train_size": size or len(full["train"][1]), "epochs": epochs, "seconds": seconds}
        for cond, x in (("val", val_x), ("val_rotate_s3", rotated)):
            m = metrics_of(logits_of(module.classifier, x).softmax(dim=1), val_y, s.n_bins)
            row[cond] = {**m, "overconfidence": m["confidence"] - m["acc"]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    table = Table(title="Standard training on MNIST, measured on the validation split (seed 0)")
    for column in ("train size", "epochs", "val acc", "val ECE", "conf − acc", "rotated: acc", "rotated: ECE"):
        table.add_column(column, justify="right")
    for row in rows:
        v, r = row["val"], row["val_rotate_s3"]
        table.add_row(
            f"{row['train_size']:,}",
            str(row["epochs"]),
            f"{100 * v['acc']:.2f}",
            f"{v['ece']:.4f}",
            f"{v['overconfidence']:+.4f}",
            f"{100 * r['acc']:.2f}",
            f"{r['ece']:.4f}",
        )
    Console(width=160).print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": asdict(s), "candidates": rows}, indent=2))
    return {"candidates": rows}


# ---- main -----------------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings, 2 seeds: a smoke test in seconds")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 3)")
    parser.add_argument("--train-size", type=int, default=None, help="training subset size (0: all 55,000)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--root", default="data", help="MNIST data folder (docs/mnist.md)")
    parser.add_argument("--json", type=Path, default=Path("runs/mnist_calibration.json"))
    parser.add_argument("--figures", type=Path, default=Path("runs/mnist_calibration"), help="folder of the PNGs")
    parser.add_argument("--select-regime", action="store_true", help="the validation check behind the regime")
    args = parser.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error("--seeds must be >= 1")
        s.seeds = list(range(args.seeds))
    if args.train_size is not None:
        if args.train_size < 0:
            parser.error("--train-size must be >= 0 (0: all)")
        s.train_size = args.train_size or None
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error("--epochs must be >= 1")
        s.epochs = args.epochs
    return s, args


def main(argv: list[str] | None = None) -> dict:
    s, args = parse(argv)
    quiet_lightning()
    if args.select_regime:
        candidates = [(None, 20), (10000, 50), (2000, 100)] if not args.quick else [(256, 2)]
        return select_regime(s, args.root, candidates, args.json.with_name(args.json.stem + "_regime.json"))
    store = RunStore(args.json, asdict(s))
    start = time.perf_counter()
    for seed in s.seeds:
        run_seed(s, seed, store, args.root)
    runs = {seed: store.runs[seed] for seed in s.seeds}
    summary = summarise(runs, s)
    print_tables(summary, s)
    print_like_for_like(s)
    args.figures.mkdir(parents=True, exist_ok=True)
    names = list(summary["methods"])
    worst = max(
        (c for c in summary["conditions"]["Standard"] if c != "clean"),
        key=lambda c: summary["conditions"]["Standard"][c]["ece"]["mean"],
    )
    reliability_figure(runs, names, ["clean", worst]).savefig(args.figures / "reliability.png", dpi=110)
    severity_figure(summary, s).savefig(args.figures / "ece_vs_severity.png", dpi=110)
    store.write(summary=summary, complete=True)
    print(
        f"figures: {args.figures}/reliability.png, ece_vs_severity.png; runs: {args.json}; "
        f"{time.perf_counter() - start:.0f} s in this call",
        file=sys.stderr,
    )
    return {"settings": asdict(s), "runs": runs, "summary": summary}


def print_like_for_like(s: Settings) -> None:
    """Print what differs between each method and Standard when built for the same seed (only the method)."""
    reference = build("Standard", s, s.seeds[0])
    for name in TRAINED[1:]:
        diff = config_diff(reference, build(name, s, s.seeds[0]))
        print(f"config diff Standard -> {name} (seed {s.seeds[0]}): {diff}")
    print("Temperature scaling: the Standard model of the same seed, logits / T with T fitted on validation")


if __name__ == "__main__":
    main()
