"""Mixed classifiers on the 8x8 digits, end to end: base models, mixtures, one table on the test split.

    python examples/mixed_digits.py               # everything (resumes: finished stages are skipped)
    python examples/mixed_digits.py --bases-only  # just checkpoints/digits_{standard,trades}.ckpt
    python examples/mixed_digits.py --retrain     # redo every stage
    python examples/mixed_digits.py --benchmark tradeoff   # `make mixed-tradeoff`, see below

``--benchmark tradeoff`` (robustlit.data.TradeoffDigitsDataModule, docs/tradeoff.md): Standard and PGD-AT
(Linf eps 0.1) bases from configs/digits_tradeoff/{standard,pgd_at}.yaml, the learned mixture
(configs/digits_tradeoff/mixed.yaml) and MixedNUTS calibrated and evaluated through the CLI
(``robustlit test --config configs/digits_tradeoff/mixednuts.yaml``); then one table on the 270 test images:
clean accuracy, standard AutoAttack, APGD-50 (``--steps``), the adaptive APGD-CE / APGD-T through alpha
(MixedNUTS: through the surrogate of its hard max) and the per-example worst case. ``--seeds N`` (default 3)
repeats everything for seeds 0..N-1 (``--seed_everything s --data.init_args.seed s``; seed s > 0 writes
``checkpoints/tradeoff_*_seed<s>.ckpt``) and prints mean ± std per cell and the goals per seed. Written to
checkpoints/tradeoff_table.json.

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
from robustlit.data import DigitsDataModule, TradeoffDigitsDataModule
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


TRADEOFF = REPO / "configs" / "digits_tradeoff"
TRADEOFF_EPS = 0.1


def _evaluate_mixture(module, attacks, bce_weights, targets, num_examples) -> dict:  # noqa: ANN001
    data = TradeoffDigitsDataModule()
    data.setup("test")
    evaluation = MixtureEvaluation(
        attacks=attacks, bce_weights=bce_weights, adaptive_targets=targets,
        sweep_alphas=[0.0, 0.25, 0.5, 0.75, 0.9, 1.0], num_examples=num_examples, print_table=False,
    )  # fmt: skip
    return evaluation.evaluate(module.mixture, data.test_dataset, 10, module.bounds, module.device)


def _tradeoff_seed(seed: int, retrain: bool, num_examples: int | None, steps: int, targets: int, part: str | None):  # noqa: ANN202
    """One seed of the trade-off table: both bases, the learned mixture and MixedNUTS trained / calibrated with
    ``--seed_everything seed`` (weights) and ``--data.init_args.seed seed`` (training order), then evaluated on the
    test split. Seed 0 uses the checkpoint names the configs give; seed s > 0 appends ``_seed<s>``. Returns
    ``(rows, learned, nuts)``, or None when ``part`` asks for one mixture only."""
    from robustlit.mixed.mixednuts_module import MixedNUTSModule

    tag = "" if seed == 0 else f"_seed{seed}"
    standard, robust = CHECKPOINTS / f"tradeoff_standard{tag}.ckpt", CHECKPOINTS / f"tradeoff_pgd_at{tag}.ckpt"
    mixed, nuts_ckpt = CHECKPOINTS / f"tradeoff_mixed{tag}.ckpt", CHECKPOINTS / f"tradeoff_mixednuts{tag}.ckpt"
    seeded = ["--seed_everything", str(seed), "--data.init_args.seed", str(seed)]
    bases = ["--model.init_args.standard_checkpoint", str(standard), "--model.init_args.robust_checkpoint", str(robust)]
    fit(TRADEOFF / "standard.yaml", standard, best=True, retrain=retrain, extra=seeded)
    fit(TRADEOFF / "pgd_at.yaml", robust, best=True, retrain=retrain, extra=seeded)
    fit(TRADEOFF / "mixed.yaml", mixed, best=False, retrain=retrain, extra=[*seeded, *bases])
    if retrain or not nuts_ckpt.is_file():
        # MixedNUTS through the CLI: calibration on the validation split, transform saved in the checkpoint,
        # then the config's own test-split evaluation (AutoAttack, APGD-100, adaptive attacks)
        nuts_ckpt.unlink(missing_ok=True)
        print(f"[cli] robustlit test --config configs/digits_tradeoff/mixednuts.yaml (seed {seed})")
        save = ["--model.init_args.save_calibrated", str(nuts_ckpt)]
        test = ["test", "--config", str(TRADEOFF / "mixednuts.yaml"), "--trainer.enable_progress_bar", "false"]
        main([*test, *seeded, *bases, *save])
    attacks = [AttackSpec("autoattack", "Linf", TRADEOFF_EPS), AttackSpec("apgd", "Linf", TRADEOFF_EPS, steps)]
    settings = f"n{num_examples or 'all'}_s{steps}_t{targets}_T1"
    results = {}
    for name, load, weights in (
        ("learned", lambda: MixedClassifierModule.load_from_checkpoint(
            mixed, map_location="cpu", weights_only=False), [0.0, 0.25, 0.5]),
        ("nuts", lambda: MixedNUTSModule.load_from_checkpoint(
            nuts_ckpt, map_location="cpu", weights_only=False, surrogate_temperature=1.0), [0.0]),  # BCE: no gradient
    ):  # fmt: skip
        cache = CHECKPOINTS / f"tradeoff_{name}{tag}_eval_{settings}.json"
        if part not in (None, name):
            continue
        if cache.is_file() and not retrain:
            results[name] = json.loads(cache.read_text())
            continue
        print(f"[eval] {name} mixture on the test split ({settings}, seed {seed})")
        results[name] = _evaluate_mixture(load().eval(), attacks, weights, targets, num_examples)
        cache.write_text(json.dumps(results[name], indent=2))
    if part is not None:
        return None
    learned, nuts = results["learned"], results["nuts"]
    rows = {
        "standard base g": learned["models"]["standard"],
        "robust base h (PGD-AT)": learned["models"]["robust"],
        "learned mixture": learned["models"]["mixture"],
        "MixedNUTS": nuts["models"]["mixture"],
    }
    return rows, learned, nuts


def _mean_std(values: list[float]) -> str:
    """``mean ± std`` in percent (sample std over seeds); one value is printed as it is."""
    if any(v is None for v in values):
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.2f}%"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


def tradeoff(
    retrain: bool, num_examples: int | None, steps: int, targets: int, part: str | None, seeds: list[int]
) -> None:
    """Bases, learned mixture, MixedNUTS (calibrated through the CLI) and the four-row table on the test split,
    for each seed; with several seeds every cell is mean ± std over them and the goals are checked per seed.

    ``part`` (``learned`` / ``nuts``) evaluates one mixture only and caches its summary (two processes can run
    side by side); a run without ``part`` reuses the cached summaries of the same settings.
    """
    from rich.console import Console
    from rich.table import Table

    per_seed = {}
    for seed in seeds:
        out = _tradeoff_seed(seed, retrain, num_examples, steps, targets, part)
        if out is not None:
            per_seed[seed] = out
    if part is not None:
        return
    first_rows, first_learned, _ = per_seed[seeds[0]]
    aa = AttackSpec("autoattack", "Linf", TRADEOFF_EPS).metric_name
    columns = [aa, AttackSpec("apgd", "Linf", TRADEOFF_EPS, steps).metric_name]
    adaptive = [f"adaptive_{name}" for name in first_learned["adaptive"]["of"]]
    alphas = ", ".join(f"{per_seed[s][2]['alpha']:.3f}" for s in seeds)
    table = Table(
        title=f"trade-off digits, test split ({first_learned['num_examples']} images), Linf eps {TRADEOFF_EPS}, "
        f"seeds {seeds}" + (" (mean ± std over seeds)" if len(seeds) > 1 else "") + f"; MixedNUTS alpha {alphas}"
    )
    for column in ["model", "clean", *columns, *adaptive, "worst of all"]:
        table.add_column(column, justify="right" if column != "model" else "left")
    for label in first_rows:
        results = [per_seed[s][0][label] for s in seeds]
        cells = [_mean_std([r["robust_acc"].get(c) for r in results]) for c in columns + adaptive]
        table.add_row(
            label, _mean_std([r["clean_acc"] for r in results]), *cells,
            _mean_std([r["worst_robust_acc"] for r in results]),
        )  # fmt: skip
    console = Console()
    console.width = max(console.width, 160)
    console.print(table)
    summary = {
        "seeds": seeds,
        "per_seed": {s: {"rows": rows, "learned_mixture": learned, "mixednuts": nuts} for s, (rows, learned, nuts)
                     in per_seed.items()},
    }  # fmt: skip
    (CHECKPOINTS / "tradeoff_table.json").write_text(json.dumps(summary, indent=2))
    sweep_figure(first_learned).savefig(CHECKPOINTS / "tradeoff_mixed_sweep.png", dpi=120)
    for seed in seeds:
        rows = per_seed[seed][0]
        g, h = rows["standard base g"], rows["robust base h (PGD-AT)"]
        gap = g["clean_acc"] - h["clean_acc"]
        h_aa = h["robust_acc"][aa]
        print(
            f"seed {seed}: clean gap g - h {100 * gap:+.1f} points (goal >= 5); robust base AutoAttack "
            f"{100 * h_aa:.1f}%"
        )
        for label in list(rows)[2:]:
            res = rows[label]
            recovered = (res["clean_acc"] - h["clean_acc"]) / gap if gap > 0 else float("nan")
            print(
                f"  {label}: recovers {100 * recovered:.0f}% of the clean gap (goal >= 50%); worst-case robust "
                f"accuracy {100 * res['worst_robust_acc']:.1f}% vs h's AutoAttack {100 * h_aa:.1f}% "
                f"({100 * (res['worst_robust_acc'] - h_aa):+.1f} points, goal >= -5)"
            )
    print(f"wrote {CHECKPOINTS.relative_to(REPO)}/tradeoff_table.json and tradeoff_mixed_sweep.png (seed {seeds[0]})")


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases-only", action="store_true", help="only train and copy the two base models")
    parser.add_argument("--retrain", action="store_true", help="redo every stage even if its checkpoint exists")
    parser.add_argument(
        "--steps", type=int, default=50, help="PGD (digits) / APGD and adaptive (tradeoff) iterations (default 50)"
    )
    parser.add_argument("--num-examples", type=int, default=None, help="test examples (default: all 270)")
    parser.add_argument("--benchmark", choices=["digits", "tradeoff"], default="digits", help="which data")
    parser.add_argument("--adaptive-targets", type=int, default=9, help="tradeoff: target classes of APGD-T")
    parser.add_argument("--part", choices=["learned", "nuts"], default=None, help="tradeoff: evaluate one mixture")
    parser.add_argument("--seeds", type=int, default=3, help="tradeoff: seeds 0..N-1, mean ± std (default 3)")
    args = parser.parse_args()
    os.chdir(REPO)  # the configs name runs/ and checkpoints/ relative to the repository root
    if args.benchmark == "tradeoff":
        if args.bases_only:
            fit(TRADEOFF / "standard.yaml", CHECKPOINTS / "tradeoff_standard.ckpt", best=True, retrain=args.retrain)
            fit(TRADEOFF / "pgd_at.yaml", CHECKPOINTS / "tradeoff_pgd_at.ckpt", best=True, retrain=args.retrain)
            return  # seed 0: the checkpoints configs/digits_tradeoff/{mixed,mixednuts}.yaml name
        if args.seeds < 1:
            parser.error("--seeds must be >= 1")
        seeds = list(range(args.seeds))
        tradeoff(args.retrain, args.num_examples, args.steps, args.adaptive_targets, args.part, seeds)
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
