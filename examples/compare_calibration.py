"""Robustness and calibration of six training methods on the embedded digits, in-distribution and under shift.

Trains Standard, PGD-AT, TRADES, DRO-AT, AR-AdaLS and uniform label smoothing with the same backbone,
optimiser, seed and number of epochs, then evaluates every model on the same test set (270 images) and on
corrupted copies of it (Gaussian noise and Gaussian blur at several severities, seeded). One rich table:

    clean accuracy | PGD robust accuracy | worst-30%-class PGD robust accuracy | ECE (15 bins)

in-distribution and averaged over the shifted copies. The robust numbers name their attack (torchattacks
PGD, Linf, eps, steps, one random start); the Standard row shows the same attack breaking an undefended
model.

    python examples/compare_calibration.py              # full run (see --help for the knobs)
    python examples/compare_calibration.py --quick      # seconds: a smoke test of the whole pipeline
"""

from __future__ import annotations

import argparse
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

from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.callbacks.calibration import CalibrationEvaluation, apply_shift, shift_seed
from robustlit.data import DigitsDataModule
from robustlit.methods.base import RobustClassifier
from robustlit.methods.dro import DROAdversarialTraining
from robustlit.methods.label_smoothing import ARAdaLS, LabelSmoothing
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.methods.trades import TRADES
from robustlit.models import SmallCNN

METHODS = ("Standard", "PGD-AT", "TRADES", "DRO-AT", "AR-AdaLS", "Label smoothing")
SHIFTS = ("gaussian_noise", "gaussian_blur")


@dataclass
class Settings:
    """Everything that defines a run (printed with the table and written to the JSON)."""

    epochs: int = 30
    seed: int = 0
    eps: float = 0.1
    train_steps: int = 5
    eval_steps: int = 20
    width: int = 16
    hidden: int = 64
    lr: float = 2e-3
    batch_size: int = 64
    beta: float = 6.0
    temperature: float = 2.0
    momentum: float = 0.1
    smoothing: float = 0.1
    adals_bins: int = 5
    adals_radii: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    adals_score_steps: int = 5
    adals_smoothing_step_size: float = 1.0
    adals_rescore_every: int = 5
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    num_test: int | None = None
    limit_train_batches: int | None = None


def quick_settings(seed: int = 0) -> Settings:
    """A seconds-long configuration that exercises every code path (numbers are not meaningful)."""
    return Settings(
        epochs=2,
        seed=seed,
        train_steps=2,
        eval_steps=3,
        width=8,
        hidden=16,
        adals_radii=[0.05, 0.1, 0.2, 0.3],
        adals_score_steps=2,
        adals_rescore_every=1,
        severities=[3],
        num_test=48,
        limit_train_batches=3,
    )


def build(name: str, s: Settings) -> RobustClassifier:
    """The method ``name`` with the shared backbone and optimiser (same initial weights for every method)."""
    pl.seed_everything(s.seed, verbose=False)
    common = {
        "backbone": SmallCNN(10, 1, width=s.width, hidden=s.hidden),
        "mean": DigitsDataModule.mean,
        "std": DigitsDataModule.std,
        "optimizer": lambda params: torch.optim.Adam(params, lr=s.lr),
    }
    threat = {"eps": s.eps, "step_size": 2.5 * s.eps / s.train_steps, "steps": s.train_steps}
    factories: dict[str, Callable[[], RobustClassifier]] = {
        "Standard": lambda: Standard(**common),
        "PGD-AT": lambda: PGDAT(**threat, **common),
        "TRADES": lambda: TRADES(beta=s.beta, **threat, **common),
        "DRO-AT": lambda: DROAdversarialTraining(
            base_loss="pgd_at", temperature=s.temperature, momentum=s.momentum, **threat, **common
        ),
        "AR-AdaLS": lambda: ARAdaLS(
            num_bins=s.adals_bins,
            radii=s.adals_radii,
            steps=s.adals_score_steps,
            smoothing_step_size=s.adals_smoothing_step_size,
            rescore_every_n_epochs=s.adals_rescore_every,
            **common,
        ),
        "Label smoothing": lambda: LabelSmoothing(smoothing=s.smoothing, **common),
    }
    return factories[name]()


def train(module: RobustClassifier, s: Settings) -> float:
    """Fit for ``s.epochs`` epochs (validation every epoch: AR-AdaLS updates its bins there); returns seconds."""
    pl.seed_everything(s.seed, verbose=False)
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
    trainer.fit(module, DigitsDataModule(batch_size=s.batch_size, seed=s.seed))
    return time.perf_counter() - start


def test_sets(s: Settings) -> dict[str, Dataset]:
    """The clean test set and its seeded corrupted copies, keyed ``clean`` / ``<shift>_s<severity>``."""
    data = DigitsDataModule()
    data.setup()
    x, y = data.test_dataset.tensors
    if s.num_test is not None:
        x, y = x[: s.num_test], y[: s.num_test]
    sets: dict[str, Dataset] = {"clean": TensorDataset(x, y)}
    for k, shift in enumerate(SHIFTS):
        for severity in s.severities:
            shifted = apply_shift(x, shift, severity, shift_seed(s.seed, 0, k, severity))
            sets[f"{shift}_s{severity}"] = TensorDataset(shifted, y)
    return sets


def evaluate(module: RobustClassifier, sets: dict[str, Dataset], s: Settings) -> dict[str, dict[str, float]]:
    """Clean accuracy, PGD robust accuracy, worst-30%-class robust accuracy and ECE on every test set."""
    spec = AttackSpec(name="pgd", norm="Linf", eps=s.eps, steps=s.eval_steps, step_size=2.5 * s.eps / s.eval_steps)
    attack = AdversarialEvaluation([spec], num_examples=None, seed=s.seed, print_table=False)
    calibration = CalibrationEvaluation(num_examples=None, reliability_diagram=False, print_table=False)
    model, device = module.classifier.eval(), torch.device("cpu")
    out = {}
    for name, dataset in sets.items():
        robust = attack.evaluate(model, dataset, module.num_classes, module.bounds, device)["attacks"][spec.metric_name]
        cal = calibration.evaluate(model, dataset, module.bounds, device)["conditions"]["clean"]
        out[name] = {
            "clean_acc": cal["acc"],
            "robust_acc": robust["robust_acc"],
            "worst30_robust_acc": robust["worst_fraction_robust_acc"],
            "ece": cal["ece"],
            "nll": cal["nll"],
            "brier": cal["brier"],
        }
    return out


def adals_state(module: ARAdaLS) -> dict[str, list[float]]:
    """AR-AdaLS's learned per-bin smoothing, its bin edges and the last logged validation gaps (rounded)."""
    metrics = module.trainer.callback_metrics
    gaps = [metrics.get(f"adals/gap/bin_{r}") for r in range(module.num_bins)]
    return {
        "smoothing": [round(v, 3) for v in module.schedule.smoothing.tolist()],
        "edges": [round(v, 3) for v in module.schedule.edges.tolist()],
        "gaps": [None if g is None else round(float(g), 3) for g in gaps],
    }


def summarise(per_set: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """In-distribution numbers and the mean over all shifted copies."""
    shifted = [v for k, v in per_set.items() if k != "clean"]
    mean = {key: sum(v[key] for v in shifted) / len(shifted) for key in shifted[0]}
    return {"in_distribution": per_set["clean"], "under_shift": mean}


def print_table(rows: list[dict], s: Settings, console: Console | None = None) -> None:
    spec = f"PGD-{s.eval_steps} Linf eps={s.eps:g}"
    table = Table(
        title=f"digits, {s.epochs} epochs each, seed {s.seed}: robustness and calibration "
        f"(test set; shift = mean over {', '.join(SHIFTS)} at severities {s.severities})"
    )
    table.add_column("method")
    for group in ("", "shift: "):
        for column in ("clean acc", f"{spec}", "worst-30% cls robust", "ECE", "NLL"):
            table.add_column(group + column, justify="right")
    table.add_column("train s", justify="right")
    for row in rows:
        cells = [row["method"]]
        for part in ("in_distribution", "under_shift"):
            m = row[part]
            cells += [
                f"{100 * m['clean_acc']:.1f}%",
                f"{100 * m['robust_acc']:.1f}%",
                f"{100 * m['worst30_robust_acc']:.1f}%",
                f"{m['ece']:.4f}",
                f"{m['nll']:.3f}",
            ]
        cells.append(f"{row['train_seconds']:.0f}")
        table.add_row(*cells)
    console = console or Console(width=220)
    console.print(table)
    for row in rows:
        if "adals" in row:
            state = row["adals"]
            console.print(
                f"AR-AdaLS final per-bin smoothing s_r (bin 0 = least robust): {state['smoothing']}; "
                f"bin edges (Linf radius): {state['edges']}; last validation gaps conf-acc: {state['gaps']}"
            )


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of every method (default 30)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eps", type=float, default=None, help="Linf radius of training and evaluation (default 0.1)")
    parser.add_argument("--temperature", type=float, default=None, help="DRO temperature r (default 2; <= 0 means inf)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and settings here")
    args = parser.parse_args(argv)
    s = quick_settings(args.seed) if args.quick else Settings(seed=args.seed)
    if args.epochs is not None:
        s.epochs = args.epochs
    if args.eps is not None:
        s.eps = args.eps
    if args.temperature is not None:
        s.temperature = math.inf if args.temperature <= 0 else args.temperature
    return s, args


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the comparison; returns one row per method (also printed as a table)."""
    s, args = parse(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(is an instance of `nn.Module`|LeafSpec|smaller than the logging).*")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sets = test_sets(s)
    rows = []
    for name in args.methods:
        module = build(name, s)
        seconds = train(module, s)
        start = time.perf_counter()
        row = {"method": name, "train_seconds": seconds, **summarise(evaluate(module, sets, s))}
        if isinstance(module, ARAdaLS):
            row["adals"] = adals_state(module)
        rows.append(row)
        print(f"{name}: trained in {seconds:.0f} s, evaluated in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print_table(rows, s)
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": asdict(s), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
