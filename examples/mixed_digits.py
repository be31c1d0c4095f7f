"""Mixed classifiers on the 8x8 digits, end to end: base models, mixtures, one table on the test split.

    python examples/mixed_digits.py               # everything (resumes: finished stages are skipped)
    python examples/mixed_digits.py --bases-only  # just checkpoints/digits_{standard,trades}.ckpt
    python examples/mixed_digits.py --retrain     # redo every stage
    python examples/mixed_digits.py --benchmark tradeoff   # `make mixed-tradeoff`, see below

``--benchmark tradeoff`` (robustlit.data.TradeoffDigitsDataModule, docs/tradeoff.md) runs
examples/mixed_tradeoff.py over ``--seeds N`` seeds (default 3; ``make mixed-tradeoff``): both bases, the
confidence report, the constant alpha it recommends, MixedNUTS, the learned mixture and the constant-alpha curve,
one table on the 270 test images (docs/mixed_classifier.md). ``--bases-only`` trains seed 0's bases only
(checkpoints/tradeoff_{standard,pgd_at}.ckpt, the paths configs/digits_tradeoff/{mixed,mixednuts}.yaml name).

Stages: (1) ``robustlit fit`` of configs/digits/standard.yaml and configs/digits/trades.yaml, best
checkpoints copied to checkpoints/digits_standard.ckpt and checkpoints/digits_trades.ckpt (the paths
configs/digits/mixed.yaml names); (2) ``robustlit fit`` of configs/digits/mixed.yaml, last checkpoint
copied to checkpoints/digits_mixed.ckpt; (3) on the 270 test digits: clean accuracy and PGD-50 Linf
eps 0.2 robust accuracy (step 0.01; torchattacks PGD, and robustlit PGD with 4 restarts) of g, h and
the mixture, plus the adaptive attack through alpha on the mixture and the constant-alpha sweep, in
one rich table (JSON and the sweep figure next to the checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import torch

from robustlit.attacks.spec import AttackSpec
from robustlit.cli import main
from robustlit.data import DigitsDataModule
from robustlit.mixed.evaluation import MixtureEvaluation
from robustlit.mixed.module import MixedClassifierModule
from robustlit.mixed.report_table import print_mixture_table
from robustlit.mixed.sweep_figure import sweep_figure

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
BASES = {"standard": "digits_standard.ckpt", "trades": "digits_trades.ckpt"}
MIXED = CHECKPOINTS / "digits_mixed.ckpt"


def fit(config: Path, target: Path, best: bool, retrain: bool, extra: list[str] | None = None) -> None:
    """``robustlit fit --config config [extra]`` unless ``target`` exists; copy its best (or last) checkpoint there."""
    if target.is_file() and not retrain:
        print(f"[skip] {target.relative_to(REPO)} exists (--retrain to redo)")
        return
    print(f"[fit] {config.relative_to(REPO)} {' '.join(extra or [])} -> {target.relative_to(REPO)}")
    cli = main(["fit", "--config", str(config), "--test_after_fit", "false", *(extra or [])])
    callback = cli.trainer.checkpoint_callback
    last = Path(callback.dirpath) / "last.ckpt"  # written every epoch (robustlit.callbacks.best_and_last_checkpoints)
    source = Path(callback.best_model_path) if best and callback.best_model_path else last
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)


def evaluate(steps: int, num_examples: int | None) -> dict:
    """g, h and the mixture on the digits test split: clean, PGD (plain and adaptive), alpha sweep."""
    module = MixedClassifierModule.load_from_checkpoint(MIXED, map_location="cpu", weights_only=False).eval()
    data = DigitsDataModule()
    data.setup("test")
    # torchattacks PGD (1 random start) and robustlit's PGD with 4 restarts (per-example worst), on g, h and
    # the mixture alike, so that h is not compared with fewer attack runs than the mixture gets.
    pgd = AttackSpec("pgd", "Linf", 0.2, steps, 0.01)
    pgd_restarts = AttackSpec("native_pgd", "Linf", 0.2, steps, 0.01, restarts=4)
    evaluation = MixtureEvaluation(
        attacks=[pgd, pgd_restarts],
        bce_weights=[0.1, 0.25, 0.5],
        sweep_alphas=[0.0, 0.25, 0.5, 0.75, 0.9, 1.0],
        num_examples=num_examples,
        print_table=False,
    )
    return evaluation.evaluate(module.mixture, data.test_dataset, module.num_classes, module.bounds, module.device)


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases-only", action="store_true", help="only train and copy the two base models")
    parser.add_argument("--retrain", action="store_true", help="redo every stage even if its checkpoint exists")
    parser.add_argument("--steps", type=int, default=50, help="digits: PGD iterations (default 50)")
    parser.add_argument("--num-examples", type=int, default=None, help="test examples (default: all 270)")
    parser.add_argument("--benchmark", choices=["digits", "tradeoff"], default="digits", help="which data")
    parser.add_argument("--seeds", type=int, default=3, help="tradeoff: seeds 0..N-1, mean ± std (default 3)")
    args = parser.parse_args()
    os.chdir(REPO)  # the configs name runs/ and checkpoints/ relative to the repository root
    if args.benchmark == "tradeoff":
        import mixed_tradeoff  # examples/mixed_tradeoff.py, next to this file

        if args.bases_only:
            mixed_tradeoff.train_bases(0, args.retrain)  # the checkpoints configs/digits_tradeoff/*.yaml name
            return
        if args.seeds < 1:
            parser.error("--seeds must be >= 1")
        mixed_tradeoff.tradeoff(list(range(args.seeds)), args.retrain)
        return
    for name, file in BASES.items():
        fit(REPO / "configs" / "digits" / f"{name}.yaml", CHECKPOINTS / file, best=True, retrain=args.retrain)
    if args.bases_only:
        return
    fit(REPO / "configs" / "digits" / "mixed.yaml", MIXED, best=False, retrain=args.retrain)
    summary = evaluate(args.steps, args.num_examples)
    print_mixture_table(summary, title="digits test split: standard base g, TRADES base h, mixture")
    (CHECKPOINTS / "digits_mixed_test.json").write_text(json.dumps(summary, indent=2))
    sweep_figure(summary).savefig(CHECKPOINTS / "digits_mixed_sweep.png", dpi=120)
    models = summary["models"]
    clean_gain = 100 * (models["mixture"]["clean_acc"] - models["robust"]["clean_acc"])
    robust_gap = 100 * (models["mixture"]["worst_robust_acc"] - models["robust"]["worst_robust_acc"])
    print(
        f"mixture vs robust base h: clean {clean_gain:+.2f} points (goal >= +1); PGD-{args.steps} Linf 0.2 robust "
        f"accuracy, per-example worst over all attacks (plain and adaptive for the mixture) {robust_gap:+.2f} "
        "points (goal >= -5)"
    )
    print(f"wrote {CHECKPOINTS.relative_to(REPO)}/digits_mixed_test.json and digits_mixed_sweep.png")


if __name__ == "__main__":
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    main_cli()
