"""Mixed classifiers on the trade-off digits, over seeds: `make mixed-tradeoff` (docs/mixed_classifier.md).

    python examples/mixed_tradeoff.py                       # seeds 0, 1, 2; resumes (finished stages are read back)
    python examples/mixed_tradeoff.py --seeds 1             # seed 0 only
    python examples/mixed_tradeoff.py --retrain             # redo every stage
    python examples/mixed_tradeoff.py --choose-alpha-range  # the learned mixture's eval-mode alpha range (validation)

Per seed s (``--seed_everything s --data.init_args.seed s``), in the order the decisions are made; nothing before
step 5 looks at the test split:

1. the bases: g = configs/digits_tradeoff/standard.yaml, h = configs/digits_tradeoff/pgd_at.yaml (``robustlit fit``);
2. the confidence report of h on the validation split (robustlit.mixed.confidence): the constant alpha is its
   recommendation, the highest predicted clean accuracy for at most 2 points of predicted robustness;
3. MixedNUTS calibrated on the validation split
   (``robustlit validate --config configs/digits_tradeoff/mixednuts.yaml``);
4. the learned mixture trained (``robustlit fit --config configs/digits_tradeoff/mixed.yaml``; its eval-mode alpha
   range was chosen on seed 0's validation split with ``--choose-alpha-range``);
5. the test split: the confidence report of h (the prediction), then standard AutoAttack, APGD-100 and the
   adaptive APGD-CE / APGD-T (9 targets, 100 steps) through alpha on MixedNUTS, the learned mixture and constant-alpha
   mixtures (the chosen alpha and a curve; alpha 0 is g and alpha 1 is h under the very same attacks).

Then one table (mean ± std over seeds; "worst" is the per-example worst case over every attack), the must-shows per
seed, the predicted curve beside the measured one (checkpoints/tradeoff_curves.png) and
checkpoints/tradeoff_table.json. Stage outputs go to checkpoints/ (``tradeoff_*[_seed<s>].ckpt``, a ``.stamp.json``
beside each says what made it) and checkpoints/tradeoff_eval/ (JSON keyed by the checkpoints' hashes), so a killed
run resumes where it stopped and a stale file is recomputed, never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robustlit.attacks.spec import AttackSpec
from robustlit.checkpoint import load_classifier
from robustlit.cli import main
from robustlit.data import TradeoffDigitsDataModule
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.confidence import confidence_report
from robustlit.mixed.evaluation import MixtureEvaluation
from robustlit.utils.atomic import write_text_atomically

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
EVALUATIONS = CHECKPOINTS / "tradeoff_eval"
TRADEOFF = REPO / "configs" / "digits_tradeoff"
EPS, STEPS, TARGETS = 0.1, 100, 9
#: the constant alphas of the measured curve (0: g alone, 1: h alone), besides each seed's chosen alpha
CURVE_ALPHAS = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
#: candidate lower ends of the learned mixture's eval-mode alpha range (``--choose-alpha-range``)
RANGE_CANDIDATES = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
ATTACKS = [AttackSpec("autoattack", "Linf", EPS), AttackSpec("apgd", "Linf", EPS, STEPS)]
AA, APGD = (a.metric_name for a in ATTACKS)
ADAPTIVE = [f"adaptive_apgd{STEPS}_linf_{EPS:g}", f"adaptive_apgd_t{STEPS}_linf_{EPS:g}"]
COLUMNS = [AA, APGD, *ADAPTIVE]


# ---- stages that resume ----------------------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _json_stage(name: str, inputs: list[Path], compute: Callable[[], dict], retrain: bool) -> dict:
    """``compute()`` cached as checkpoints/tradeoff_eval/<name>_<hash of the inputs>.json (atomic write)."""
    key = hashlib.sha256("".join(_sha(p) for p in inputs).encode()).hexdigest()[:12]
    path = EVALUATIONS / f"{name}_{key}.json"
    if path.is_file() and not retrain:
        return json.loads(path.read_text())
    start = time.monotonic()
    print(f"[run] {name}", flush=True)
    result = compute() | {"wall_seconds": time.monotonic() - start}
    write_text_atomically(path, json.dumps(result, indent=1))
    return result


def _stamped(target: Path, command: list[str], retrain: bool, run: Callable[[], None]) -> None:
    """Run ``run`` (which writes ``target``) unless ``target`` exists with a stamp of the same command."""
    stamp = target.with_name(target.name + ".stamp.json")
    data = {k: v for k, v in vars(TradeoffDigitsDataModule()).items() if k in ("contrast", "downsample", "noise_std")}
    expected = {"command": command, "data": {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}
    recorded = json.loads(stamp.read_text()) if stamp.is_file() else {}
    recorded.pop("wall_seconds", None)
    if not retrain and target.is_file() and recorded == expected:
        print(f"[skip] {target.relative_to(REPO)} exists", flush=True)
        return
    if target.is_file():
        print(f"[redo] {target.relative_to(REPO)}: missing or different stamp", flush=True)
    target.unlink(missing_ok=True)
    start = time.monotonic()
    run()
    write_text_atomically(stamp, json.dumps(expected | {"wall_seconds": time.monotonic() - start}))


def _fit(config: str, target: Path, extra: list[str], retrain: bool, best: bool, inputs: tuple[Path, ...] = ()) -> None:
    from mixed_digits import fit  # the example next to this one: robustlit fit + copy of the best/last checkpoint

    command = ["fit", config, _sha(TRADEOFF / config), *extra, *(_sha(p) for p in inputs)]
    _stamped(target, command, retrain, lambda: fit(TRADEOFF / config, target, best=best, retrain=True, extra=extra))


def _paths(seed: int) -> dict[str, Path]:
    tag = "" if seed == 0 else f"_seed{seed}"
    names = {"g": "standard", "h": "pgd_at", "learned": "mixed", "nuts": "mixednuts"}
    return {key: CHECKPOINTS / f"tradeoff_{name}{tag}.ckpt" for key, name in names.items()}


def train_bases(seed: int, retrain: bool) -> dict[str, Path]:
    """Step 1: g and h of one seed (seed 0: checkpoints/tradeoff_{standard,pgd_at}.ckpt, as the configs name them)."""
    paths = _paths(seed)
    seeded = ["--seed_everything", str(seed), "--data.init_args.seed", str(seed)]
    _fit("standard.yaml", paths["g"], seeded, retrain, best=True)
    _fit("pgd_at.yaml", paths["h"], seeded, retrain, best=True)
    return paths


def _train(seed: int, retrain: bool) -> dict[str, Path]:
    """Steps 1, 3 and 4: the bases, the calibrated MixedNUTS and the learned mixture (validation split only)."""
    paths = train_bases(seed, retrain)
    seeded = ["--seed_everything", str(seed), "--data.init_args.seed", str(seed)]
    bases = ["--model.init_args.standard_checkpoint", str(paths["g"]), "--model.init_args.robust_checkpoint"]
    bases.append(str(paths["h"]))
    nuts = [*seeded, *bases, "--model.init_args.save_calibrated", str(paths["nuts"])]
    command = ["validate", "--config", str(TRADEOFF / "mixednuts.yaml"), "--trainer.enable_progress_bar", "false"]
    stamp = ["validate", "mixednuts.yaml", _sha(TRADEOFF / "mixednuts.yaml"), *nuts, _sha(paths["g"]), _sha(paths["h"])]
    _stamped(paths["nuts"], stamp, retrain, lambda: main([*command, *nuts]))
    _fit("mixed.yaml", paths["learned"], [*seeded, *bases], retrain, best=False, inputs=(paths["g"], paths["h"]))
    return paths


# ---- evaluation ----------------------------------------------------------------------------------------------------
def _split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = TradeoffDigitsDataModule()
    data.setup()
    return (data.val_dataset if name == "val" else data.test_dataset).tensors


def _report(seed: int, paths: dict[str, Path], split: str, retrain: bool) -> dict:
    def compute() -> dict:
        x, y = _split(split)
        g, h = load_classifier(paths["g"]), load_classifier(paths["h"])
        return confidence_report(h, x, y, EPS, STEPS, targets=TARGETS, standard=g, seed=seed)

    return _json_stage(f"confidence_{split}_seed{seed}", [paths["g"], paths["h"]], compute, retrain)


def _attack(mixture: torch.nn.Module, bce_weights: list[float], base_models: bool, split: str = "test") -> dict:
    from torch.utils.data import TensorDataset

    evaluation = MixtureEvaluation(
        attacks=ATTACKS, bce_weights=bce_weights, adaptive_targets=TARGETS, sweep_alphas=[], num_examples=None,
        print_table=False, base_models=base_models, per_example=True,
    )  # fmt: skip
    return evaluation.evaluate(mixture, TensorDataset(*_split(split)), 10, (0.0, 1.0), torch.device("cpu"))


def _constant(seed: int, paths: dict[str, Path], alpha: float, retrain: bool, split: str = "test") -> dict:
    def compute() -> dict:
        mixture = MixedClassifier(load_classifier(paths["g"]), load_classifier(paths["h"]), alpha=alpha)
        return _attack(mixture, [0.0], base_models=False, split=split)  # a constant gamma: the BCE term is flat

    return _json_stage(f"constant_{alpha:g}_{split}_seed{seed}", [paths["g"], paths["h"]], compute, retrain)


def _mixtures(seed: int, paths: dict[str, Path], retrain: bool) -> dict[str, dict]:
    from robustlit.mixed.mixednuts_module import MixedNUTSModule
    from robustlit.mixed.module import MixedClassifierModule

    def nuts() -> dict:
        module = MixedNUTSModule.load_from_checkpoint(paths["nuts"], map_location="cpu", weights_only=False).eval()
        # through the surrogate of the hard max; g and h too, for the keep fraction reached (kept_of_robust_base)
        mixture = module.mixture
        calibration = {name: float(getattr(mixture, name)) for name in ("s", "c", "p")} | {"alpha": mixture.alpha}
        calibration |= {"search": module.search_result}
        return _attack(mixture, [0.0], base_models=True) | {"calibration": calibration}

    def learned() -> dict:
        module = MixedClassifierModule.load_from_checkpoint(paths["learned"], map_location="cpu", weights_only=False)
        return _attack(module.eval().mixture, [0.0, 0.25, 0.5], base_models=False)

    inputs = [paths["g"], paths["h"]]
    return {
        "MixedNUTS": _json_stage(f"mixednuts_test_seed{seed}", [*inputs, paths["nuts"]], nuts, retrain),
        "learned mixture": _json_stage(f"learned_test_seed{seed}", [*inputs, paths["learned"]], learned, retrain),
    }


# ---- rows, goals, figure -------------------------------------------------------------------------------------------
def _row(*sources: tuple[dict, str]) -> dict:
    """One table row from ``(summary, model)`` sources over the same examples: clean accuracy from the first, each
    attack's column from the first source that ran it, ``worst`` = per example robust against every attack of every
    source."""
    first = sources[0][0]["per_example"]
    cells: dict[str, float] = {}
    worst = torch.tensor(first[f"{sources[0][1]}/clean"], dtype=torch.bool)
    for summary, model in sources:
        per_example = summary["per_example"]
        if per_example["index"] != first["index"]:
            raise RuntimeError("the evaluations to combine were run on different examples")
        for column in COLUMNS:
            key = f"{model}/{column}"
            if key in per_example:
                mask = torch.tensor(per_example[key], dtype=torch.bool)
                cells.setdefault(column, mask.float().mean().item())
                worst &= mask
    clean = torch.tensor(first[f"{sources[0][1]}/clean"], dtype=torch.float).mean().item()
    return {"clean_acc": clean, "robust_acc": cells, "worst_robust_acc": worst.float().mean().item()}


def _curve_clean_at(curve: list[dict], worst: float) -> float:
    """Clean accuracy of the measured constant-alpha curve at a worst-case robust accuracy: its upper envelope
    (the points no other point beats in both clean and worst-case accuracy), linearly interpolated between them by
    robustness; below its least robust point that point's clean accuracy, above its most robust point that one's."""
    points = [(p["worst"], p["clean"]) for p in curve]
    frontier = sorted({(w, c) for w, c in points if not any(w2 >= w and c2 >= c and (w2, c2) != (w, c)
                                                            for w2, c2 in points)})  # fmt: skip
    if worst <= frontier[0][0]:
        return frontier[0][1]
    for (w0, c0), (w1, c1) in zip(frontier, frontier[1:], strict=False):
        if w0 <= worst <= w1:
            return c0 + (c1 - c0) * (worst - w0) / (w1 - w0)
    return frontier[-1][1]


def _seed(seed: int, retrain: bool) -> dict:
    """Everything of one seed, in the order of decisions (module docstring)."""
    paths = _train(seed, retrain)
    val_report = _report(seed, paths, "val", retrain)
    alpha = val_report["recommended"]["alpha"]
    print(f"seed {seed}: constant alpha {alpha:g} chosen on the validation split (confidence report)", flush=True)
    test_report = _report(seed, paths, "test", retrain)
    mixtures = _mixtures(seed, paths, retrain)
    curve = {a: _constant(seed, paths, a, retrain) for a in sorted({*CURVE_ALPHAS, alpha})}
    nuts = mixtures["MixedNUTS"]
    rows = {
        "standard base g": _row((nuts, "standard"), (curve[0.0], "mixture")),
        "robust base h (PGD-AT)": _row((nuts, "robust"), (curve[1.0], "mixture")),
        "constant alpha": _row((curve[alpha], "mixture")),
        "MixedNUTS": _row((nuts, "mixture")),
        "learned mixture": _row((mixtures["learned mixture"], "mixture")),
    }
    predicted = {round(p["alpha"], 6): p for p in test_report["curve"]}
    measured = [
        {"alpha": a, "clean": s["models"]["mixture"]["clean_acc"], "worst": s["models"]["mixture"]["worst_robust_acc"],
         "predicted_robust": predicted[round(a, 6)]["robust_acc"] if round(a, 6) in predicted else None,
         "predicted_clean": predicted[round(a, 6)]["clean_acc"] if round(a, 6) in predicted else None}
        for a, s in curve.items()
    ]  # fmt: skip
    return {
        "alpha": alpha, "rows": rows, "curve": measured, "val_report": _brief(val_report),
        "test_report": _brief(test_report), "test_curve": test_report["curve"],
        "mixednuts": {"calibration": nuts.get("calibration"),
                      "kept_of_robust_base": nuts["models"]["mixture"].get("kept_of_robust_base")},
        "learned_alpha": {k: mixtures["learned mixture"]["models"]["mixture"].get(k)
                          for k in ("alpha_clean", "alpha_attacked", "alpha_adaptive")},
        "wall_seconds": {"test_report": test_report["wall_seconds"], "mixednuts": nuts["wall_seconds"],
                         "learned": mixtures["learned mixture"]["wall_seconds"],
                         "curve": sum(s["wall_seconds"] for s in curve.values())},
    }  # fmt: skip


def _brief(report: dict) -> dict:
    keep = ("clean_acc", "robust_acc", "auc", "standard_clean_acc", "clean_gap", "recommended", "attack")
    quartiles = {g: report[g]["quartiles"] for g in ("robust_margins", "mistake_margins")}
    return {k: report.get(k) for k in keep} | {"quartiles": quartiles}


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.1f}%"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


def _goals(per_seed: dict[int, dict]) -> list[str]:
    """The must-shows of docs/mixed_classifier.md, per seed and on average, as lines to print."""
    lines, drops = [], {}
    for seed, result in per_seed.items():
        rows = result["rows"]
        g, h = rows["standard base g"], rows["robust base h (PGD-AT)"]
        h_aa, gap = h["robust_acc"][AA], g["clean_acc"] - h["clean_acc"]
        constant = rows["constant alpha"]
        lines.append(
            f"seed {seed}: g {100 * g['clean_acc']:.1f}% clean / {100 * g['worst_robust_acc']:.1f}% worst; h "
            f"{100 * h['clean_acc']:.1f}% clean, AutoAttack {100 * h_aa:.1f}%; clean gap {100 * gap:.1f} points"
        )
        for label, row in list(rows.items())[2:]:
            drop = row["worst_robust_acc"] - h_aa
            drops.setdefault(label, []).append(drop)
            recovered = (row["clean_acc"] - h["clean_acc"]) / gap
            at_curve = _curve_clean_at(result["curve"], row["worst_robust_acc"])
            lines.append(
                f"  {label}: clean {100 * row['clean_acc']:.1f}% ({100 * recovered:.0f}% of the gap), worst "
                f"{100 * row['worst_robust_acc']:.1f}% ({100 * drop:+.1f} vs h's AutoAttack, goal >= -5 per seed: "
                f"{'met' if drop >= -0.05 else 'NOT met'}); constant-alpha curve at this worst case: clean "
                f"{100 * at_curve:.1f}% ({100 * (row['clean_acc'] - at_curve):+.1f} points)"
            )
        recovered = (constant["clean_acc"] - h["clean_acc"]) / gap
        lines.append(f"  constant alpha recovers {100 * recovered:.0f}% of the gap (goal >= 60%: "
                     f"{'met' if recovered >= 0.6 else 'NOT met'})")  # fmt: skip
        nuts = rows["MixedNUTS"]
        at_curve = _curve_clean_at(result["curve"], nuts["worst_robust_acc"])
        within = nuts["worst_robust_acc"] >= h_aa - 0.02
        above = nuts["clean_acc"] >= at_curve - 0.01
        kept = result["mixednuts"]["kept_of_robust_base"]
        lines.append(f"  MixedNUTS within 2 points of h's AutoAttack: {'met' if within else 'NOT met'}; on or above "
                     f"the constant-alpha curve (clean within 1 point): {'met' if above else 'NOT met'}; keeps "
                     f"{100 * kept:.1f}% of h's robust test examples")  # fmt: skip
        along = [p for p in sorted(result["curve"], key=lambda p: p["alpha"]) if p["predicted_robust"] is not None]
        inside = [p for p in along if -1e-9 <= p["worst"] - p["predicted_robust"] <= 0.03 + 1e-9]
        excess = ", ".join(f"{p['alpha']:g}: {100 * (p['worst'] - p['predicted_robust']):+.1f}" for p in along)
        lines.append(f"  measured minus predicted robust accuracy along the curve (alpha: points): {excess}; in "
                     f"[0, +3] at {len(inside)} of {len(along)} alphas")  # fmt: skip
        point = next(p for p in result["curve"] if p["alpha"] == result["alpha"])
        excess = point["worst"] - point["predicted_robust"]
        lines.append(
            f"  constant alpha {result['alpha']:g}: measured worst {100 * point['worst']:.1f}%, predicted from the "
            f"test margins {100 * point['predicted_robust']:.1f}% ({100 * excess:+.1f}; goal in [0, +3]: "
            f"{'met' if -1e-9 <= excess <= 0.03 + 1e-9 else 'NOT met'})"
        )
    for label, values in drops.items():
        mean = sum(values) / len(values)
        lines.append(f"mean over seeds, {label}: worst case {100 * mean:+.1f} points vs h's AutoAttack (goal >= -3: "
                     f"{'met' if mean >= -0.03 else 'NOT met'})")  # fmt: skip
    return lines


def _figure(per_seed: dict[int, dict]):  # noqa: ANN202
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(per_seed), 4.5))
    for i, (seed, result) in enumerate(per_seed.items()):
        ax = figure.add_subplot(1, len(per_seed), i + 1)
        predicted = result["test_curve"]
        ax.plot([100 * p["clean_acc"] for p in predicted], [100 * p["robust_acc"] for p in predicted], "-",
                color="tab:gray", label="predicted from h's margins (g fully fooled)")  # fmt: skip
        measured = sorted(result["curve"], key=lambda p: p["alpha"])
        ax.plot([100 * p["clean"] for p in measured], [100 * p["worst"] for p in measured], "o--", color="tab:blue",
                label="measured constant alpha (worst case)")  # fmt: skip
        for p in measured:
            ax.annotate(f"{p['alpha']:g}", (100 * p["clean"], 100 * p["worst"]), textcoords="offset points",
                        xytext=(3, 3), fontsize=7)  # fmt: skip
        for label, marker, color in (("MixedNUTS", "*", "tab:green"), ("learned mixture", "D", "tab:purple")):
            row = result["rows"][label]
            ax.plot(100 * row["clean_acc"], 100 * row["worst_robust_acc"], marker, color=color, ms=11, label=label)
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel("robust accuracy (%), per-example worst case")
        ax.set_title(f"seed {seed}, test split", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def tradeoff(seeds: list[int], retrain: bool) -> dict:
    """All seeds, the table, the goals and the figure (module docstring)."""
    from rich.console import Console
    from rich.table import Table

    start = time.monotonic()
    per_seed = {seed: _seed(seed, retrain) for seed in seeds}
    alphas = ", ".join(f"{r['alpha']:g}" for r in per_seed.values())
    table = Table(title=f"trade-off digits, test split (270 images), Linf eps {EPS}, seeds {seeds}, mean ± std; "
                  f"constant alpha chosen on validation: {alphas}")  # fmt: skip
    for column in ["model", "clean", *COLUMNS, "worst of all"]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for label in per_seed[seeds[0]]["rows"]:
        rows = [result["rows"][label] for result in per_seed.values()]
        cells = [_mean_std([r["robust_acc"][c] for r in rows]) if all(c in r["robust_acc"] for r in rows) else "-"
                 for c in COLUMNS]  # fmt: skip
        table.add_row(label, _mean_std([r["clean_acc"] for r in rows]), *cells,
                      _mean_std([r["worst_robust_acc"] for r in rows]))  # fmt: skip
    console = Console()
    console.width = max(console.width, 170)
    console.print(table)
    print("g's and h's adaptive columns: the constant-alpha mixture at alpha 0 and 1 under the same attacks")
    for seed, result in per_seed.items():
        points = ", ".join(
            f"{p['alpha']:g}: {100 * p['clean']:.1f}/{100 * p['worst']:.1f}"
            + ("" if p["predicted_robust"] is None else f" (pred. {100 * p['predicted_robust']:.1f})")
            for p in sorted(result["curve"], key=lambda p: p["alpha"])
        )
        print(f"seed {seed} constant alpha, clean/worst (predicted robust): {points}")
    for line in _goals(per_seed):
        print(line)
    summary = {"seeds": seeds, "per_seed": per_seed, "wall_seconds": time.monotonic() - start}
    write_text_atomically(CHECKPOINTS / "tradeoff_table.json", json.dumps(summary, indent=1))
    _figure(per_seed).savefig(CHECKPOINTS / "tradeoff_curves.png", dpi=120)
    print("wrote checkpoints/tradeoff_table.json and checkpoints/tradeoff_curves.png")
    return summary


def choose_alpha_range(retrain: bool) -> float:
    """The learned mixture's eval-mode alpha range [low, 1], chosen on seed 0's validation split: the highest clean
    accuracy among the candidates whose worst case is at most 2 points below h's AutoAttack accuracy there."""
    from robustlit.mixed.module import MixedClassifierModule

    paths = _train(0, retrain)
    h_aa = _constant(0, paths, 1.0, retrain, split="val")["models"]["mixture"]["robust_acc"][AA]
    results = {}
    for low in RANGE_CANDIDATES:

        def compute(low: float = low) -> dict:
            module = MixedClassifierModule.load_from_checkpoint(
                paths["learned"], map_location="cpu", weights_only=False
            )
            module.mixture.mixing_network.alpha_min.fill_(low)
            return _attack(module.eval().mixture, [0.0, 0.25, 0.5], base_models=False, split="val")

        summary = _json_stage(f"learned_range_{low:g}_val_seed0", [paths["g"], paths["h"], paths["learned"]],
                              compute, retrain)["models"]["mixture"]  # fmt: skip
        results[low] = summary
        print(f"alpha in [{low:g}, 1]: clean {100 * summary['clean_acc']:.1f}%, worst "
              f"{100 * summary['worst_robust_acc']:.1f}% (h AutoAttack {100 * h_aa:.1f}%)")  # fmt: skip
    allowed = [low for low, s in results.items() if s["worst_robust_acc"] >= h_aa - 0.02]
    chosen = max(allowed or [max(RANGE_CANDIDATES)], key=lambda low: (results[low]["clean_acc"], low))
    print(f"chosen: alpha_range [{chosen:g}, 1.0]")
    return chosen


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--retrain", action="store_true", help="redo every stage")
    parser.add_argument("--choose-alpha-range", action="store_true", help="the learned mixture's alpha range (val)")
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    os.chdir(REPO)  # the configs name runs/ and checkpoints/ relative to the repository root
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.choose_alpha_range:
        choose_alpha_range(args.retrain)
    else:
        tradeoff(list(range(args.seeds)), args.retrain)
