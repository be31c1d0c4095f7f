"""Worst-class and average robustness on MNIST: one adversarial-training base, and the same base with DRO (DONE),
GAIRAT and MAIL weights through the ``weighting`` hook, like for like.

Sow, Lin, Wang and Liang (ICLR 2024, DONE) claim that KL-DRO instance weights raise average robust accuracy (PGD
and AutoAttack) and, most of all, the robust accuracy of the weakest classes (RA-Tail-30: the 30% worst classes),
over plain adversarial training and over the instance-reweighted GAIRAT and MAIL (docs/reweighting_mnist.md).

- One base objective for every method (``--base``: ``fgsm_rs`` (default), one step of 1.25 eps from a uniform start
  (Wong, Rice and Kolter 2020), or ``pgd_at``, K-step PGD from a uniform start), one backbone, optimiser, cyclic
  learning rate, epochs, data order and, per seed, the same initial weights. The reweighted runs are the base module
  with a ``weighting`` (``robustlit.losses``: ``DROWeights``, ``GAIRATWeights``, ``MAILWeights``); the printed config
  diff shows that nothing else differs. The base and eps are chosen on the validation split (``--select-base``):
  eps 0.1, the largest of 0.1, 0.2, 0.3 at which single-step training of this network neither collapsed nor
  masked gradients (docs/reweighting_mnist.md).
- Evaluation on the MNIST test set: clean accuracy and PGD-50 with 10 restarts (robustlit's ``native_pgd``, CE,
  step 0.01, every iterate of every restart kept) on all 10,000 images; standard AutoAttack (pyautoattack) on
  the first 1,000, with the per-example worst case of PGD and AutoAttack there; per-class robust accuracy, the
  worst class and the worst 30% of classes (3 of 10) for each.
- The attacks are checked on an undefended model first: a Standard model (first seed) must fall to ~0% under the
  same PGD and AutoAttack at eps 0.3 (at eps 0.1 a standard MNIST model keeps some true robustness; reported).
- 3 seeds, mean ± std, paired t-tests over seeds with Holm's correction (:mod:`robustlit.experiments`), against
  the base and DRO against each other method.

    python examples/mnist_reweighting.py --select-base   # validation check: base and eps
    python examples/mnist_reweighting.py                 # 3 seeds -> runs/mnist_reweighting.json
    python examples/mnist_reweighting.py --quick         # seconds: every code path, meaningless numbers

Resumable: trained weights are kept under ``runs/mnist_reweighting/``, finished attack batches in its cache, and the
JSON is rewritten after every (seed, method).
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
from rich.console import Console
from rich.table import Table
from torch.utils.data import TensorDataset

from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.experiments import RunStore, mean_std, paired_tests
from robustlit.experiments.mnist_data import TensorSplitsDataModule, mnist_splits
from robustlit.experiments.paired import verdict
from robustlit.experiments.training import fit, quiet_lightning
from robustlit.losses import DROWeights, GAIRATWeights, MAILWeights
from robustlit.methods.base import RobustClassifier
from robustlit.methods.pgd_at import PGDAT
from robustlit.methods.standard import Standard
from robustlit.metrics.worst_class import per_class_accuracy, worst_class_accuracy, worst_fraction_class_accuracy
from robustlit.models import MLP
from robustlit.utils.atomic import atomic_target, write_text_atomically

BASES = {"pgd_at": "PGD-AT", "fgsm_rs": "FGSM-RS"}
#: eps at which the undefended model must fall to ~0% under the same attacks (MNIST's usual 0.3): at a smaller eps a
#: standard model keeps some true robustness, so ~0% is not what a working attack gives there
CHECK_EPS = 0.3
REWEIGHTED = ("DRO (DONE)", "GAIRAT", "MAIL")
#: Settings that only change the evaluation (stored weights stay valid when they change)
EVALUATION_SETTINGS = (
    "seeds",
    "pgd_steps",
    "pgd_restarts",
    "pgd_step_size",
    "autoattack_examples",
    "num_test",
    "require_broken_standard",
)
#: (key, label, higher is better)
METRICS = (
    ("clean_acc", "clean", True),
    ("pgd_acc", "PGD-50x10", True),
    ("pgd_worst_class", "PGD worst class", True),
    ("pgd_worst30", "PGD worst-30%", True),
    ("aa_acc", "AA (1k)", True),
    ("worst_case_acc", "worst case (1k)", True),
    ("worst_case_worst30", "worst case worst-30% (1k)", True),
)


@dataclass
class Settings:
    """Everything that defines a run (written to the JSON; a stored run is reused only with equal settings)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base: str = "fgsm_rs"
    eps: float = 0.1
    train_steps: int = 10
    epochs: int = 10
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr_max: float = 5e-3
    lr_peak: float = 0.4
    batch_size: int = 100
    dro_temperature: float = 1.0
    dro_momentum: float = 0.1
    gairat_lam: float = -1.0
    gairat_begin_fraction: float = 0.5
    mail_slope: float = 1.0
    mail_bias: float = -1.5
    mail_begin_fraction: float = 0.5
    pgd_steps: int = 50
    pgd_restarts: int = 10
    pgd_step_size: float = 0.01
    autoattack_examples: int = 1000
    num_test: int | None = None
    num_train: int | None = None
    standard_epochs: int = 5
    #: refuse to report when the attacks leave more than 2% of the undefended Standard model robust at CHECK_EPS
    #: (off in --quick only)
    require_broken_standard: bool = True


def quick_settings() -> Settings:
    """Seconds: two seeds, tiny sets (numbers are not meaningful)."""
    return Settings(
        seeds=[0, 1],
        train_steps=2,
        epochs=2,
        hidden=[32],
        pgd_steps=3,
        pgd_restarts=2,
        autoattack_examples=20,
        num_test=60,
        num_train=300,
        standard_epochs=1,
        require_broken_standard=False,
    )


# ---- methods --------------------------------------------------------------------------------------------
def triangular(total_steps: int, peak: float):  # noqa: ANN201 - a LambdaLR factor
    """Wong et al.'s cyclic learning rate: a factor rising linearly 0 -> 1 at ``peak`` of training, then to 0."""

    def factor(step: int) -> float:
        t = min((step + 1) / total_steps, 1.0)
        return t / peak if t <= peak else max(0.0, (1.0 - t) / (1.0 - peak))

    return factor


def common(s: Settings, steps_per_epoch: int, epochs: int) -> dict:
    total = max(1, steps_per_epoch * epochs)
    return {
        "backbone": MLP(784, 10, s.hidden),
        "mean": (0.1307,),
        "std": (0.3081,),
        "optimizer": lambda params: torch.optim.Adam(params, lr=s.lr_max),
        "lr_scheduler": lambda opt: {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, triangular(total, s.lr_peak)),
            "interval": "step",
        },
    }


def threat(s: Settings) -> dict:
    """The base's training attack: FGSM-RS is PGD with one step of 1.25 eps from a uniform start, projected."""
    if s.base == "fgsm_rs":
        return {"eps": s.eps, "steps": 1, "step_size": 1.25 * s.eps, "random_start": "uniform"}
    return {"eps": s.eps, "steps": s.train_steps, "step_size": 2.5 * s.eps / s.train_steps, "random_start": "uniform"}


def weighting(name: str, s: Settings):  # noqa: ANN201
    """The ``weighting`` of each method (None for the base)."""
    if name == "DRO (DONE)":
        return DROWeights(temperature=s.dro_temperature, momentum=s.dro_momentum)
    if name == "GAIRAT":
        return GAIRATWeights(lam=s.gairat_lam, begin_epoch=int(s.gairat_begin_fraction * s.epochs))
    if name == "MAIL":
        return MAILWeights(slope=s.mail_slope, bias=s.mail_bias, begin_epoch=int(s.mail_begin_fraction * s.epochs))
    return None


def build(name: str, s: Settings, seed: int, steps_per_epoch: int) -> RobustClassifier:
    """``name`` (the base, a reweighted method or ``Standard``) with seeded initial weights."""
    pl.seed_everything(seed, verbose=False)
    if name == "Standard":
        return Standard(**common(s, steps_per_epoch, s.standard_epochs))
    return PGDAT(**threat(s), weighting=weighting(name, s), **common(s, steps_per_epoch, s.epochs))


def method_names(s: Settings) -> list[str]:
    return [BASES[s.base], *REWEIGHTED]


def config_diff(a: RobustClassifier, b: RobustClassifier) -> dict[str, tuple[str, str]]:
    """Hyperparameters and initial weights that differ between two built methods (should be ``weighting`` only)."""
    ha = {k: repr(v) for k, v in a.hparams.items() if k != "backbone"}
    hb = {k: repr(v) for k, v in b.hparams.items() if k != "backbone"}
    diff = {k: (ha.get(k, "-"), hb.get(k, "-")) for k in sorted(set(ha) | set(hb)) if ha.get(k) != hb.get(k)}
    if type(a) is not type(b):
        diff["class"] = (type(a).__name__, type(b).__name__)
    if not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True)):
        diff["initial weights"] = ("seeded", "different")
    return diff


# ---- training and evaluation ---------------------------------------------------------------------------
def splits(s: Settings, root: str) -> dict:
    full = mnist_splits(root)
    train = tuple(t[: s.num_train] for t in full["train"])
    test = tuple(t[: s.num_test] for t in full["test"])
    return {"train": train, "val": full["val"], "test": test}


def trained(name: str, s: Settings, seed: int, data: dict, folder: Path) -> tuple[RobustClassifier, float]:
    """Train ``name`` for seed ``seed``, or load its weights from an earlier run of the same settings."""
    steps = math.ceil(len(data["train"][1]) / s.batch_size)
    module = build(name, s, seed, steps)
    path = folder / f"seed{seed}_{name.split()[0]}.pt"
    # the settings that shape training; stored weights trained under other ones are retrained, never reused
    training = {k: v for k, v in asdict(s).items() if k not in EVALUATION_SETTINGS}
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        if stored.get("training", training) == training:
            module.load_state_dict(stored["state_dict"])
            return module, float(stored["train_seconds"])
        print(f"{path}: trained with other settings; retraining", file=sys.stderr)
    epochs = s.standard_epochs if name == "Standard" else s.epochs
    datamodule = TensorSplitsDataModule(data, batch_size=s.batch_size, seed=seed)
    seconds = fit(module, datamodule, epochs, seed, val_every_n_epochs=epochs)
    with atomic_target(path) as tmp:  # a killed run never leaves half a file to load
        torch.save({"state_dict": module.state_dict(), "train_seconds": seconds, "training": training}, tmp)
    return module, seconds


def pgd_spec(s: Settings, eps: float | None = None) -> AttackSpec:
    return AttackSpec(
        name="native_pgd",
        norm="Linf",
        eps=s.eps if eps is None else eps,
        steps=s.pgd_steps,
        step_size=s.pgd_step_size,
        restarts=s.pgd_restarts,
        loss="ce",
    )


def evaluate(
    module: RobustClassifier, s: Settings, data: dict, seed: int, cache: Path, eps: float | None = None
) -> dict:
    """Clean and PGD on the whole test set; AutoAttack on its first examples, with the per-example worst case of PGD
    and AutoAttack there (an example counts as robust only if both fail). ``eps``: the radius (default ``s.eps``)."""
    eps = s.eps if eps is None else eps
    x, y = data["test"]
    model, device = module.classifier.eval(), torch.device("cpu")
    out: dict = {}
    start = time.perf_counter()
    spec = pgd_spec(s, eps)
    full = AdversarialEvaluation(
        [spec], num_examples=None, batch_size=500, seed=seed, print_table=False, cache_dir=str(cache)
    )
    summary = full.evaluate(model, TensorDataset(x, y), 10, module.bounds, device)
    pgd = summary["attacks"][spec.metric_name]
    out.update(
        clean_acc=summary["clean_acc"],
        pgd_acc=pgd["robust_acc"],
        pgd_worst_class=pgd["worst_class_robust_acc"],
        pgd_worst30=pgd["worst_fraction_robust_acc"],
        pgd_per_class=pgd["per_class_robust_acc"],
        pgd_seconds=time.perf_counter() - start,
    )
    start = time.perf_counter()
    k = min(s.autoattack_examples, len(y))
    aa_spec = AttackSpec(name="autoattack", norm="Linf", eps=eps)
    first = AdversarialEvaluation(
        [aa_spec], num_examples=k, batch_size=500, seed=seed, print_table=False, cache_dir=str(cache)
    )
    summary = first.evaluate(model, TensorDataset(x[:k], y[:k]), 10, module.bounds, device)
    aa = summary["attacks"][aa_spec.metric_name]
    pgd_robust = full.last_columns["robust"][:k, 0]  # examples in dataset order (index 0..k-1)
    assert torch.equal(full.last_columns["index"][:k], first.last_columns["index"])
    both = pgd_robust & first.last_columns["robust"][:, 0]
    per_class = per_class_accuracy(both, y[:k], 10)
    out.update(
        aa_acc=aa["robust_acc"],
        aa_worst30=aa["worst_fraction_robust_acc"],
        aa_per_class=aa["per_class_robust_acc"],
        subset_pgd_acc=pgd_robust.float().mean().item(),
        worst_case_acc=both.float().mean().item(),
        worst_case_worst_class=worst_class_accuracy(per_class).item(),
        worst_case_worst30=worst_fraction_class_accuracy(per_class, 0.3).item(),
        worst_case_per_class=per_class.tolist(),
        subset_clean_acc=summary["clean_acc"],
        aa_seconds=time.perf_counter() - start,
    )
    return out


def run_seed(s: Settings, seed: int, store: RunStore, root: str, folder: Path) -> None:
    data = splits(s, root)
    names = method_names(s)
    if seed == s.seeds[0]:  # the undefended model that every attack must break: once is enough
        names = ["Standard", *names]
    for name in names:
        stored = store.get(seed, name)
        if stored is not None and (name != "Standard" or "check" in stored):  # a Standard row needs its eps check
            print(f"seed {seed} {name}: reused", file=sys.stderr)
            continue
        module, seconds = trained(name, s, seed, data, folder / "models")
        row = {"train_seconds": seconds, **evaluate(module, s, data, seed, folder / "attack-cache")}
        if name == "Standard":  # the same attacks at MNIST's usual eps must break the undefended model
            row["check"] = {"eps": CHECK_EPS, **evaluate(module, s, data, seed, folder / "attack-cache", CHECK_EPS)}
            check = row["check"]
            if s.require_broken_standard and max(check["pgd_acc"], check["aa_acc"]) > 0.02:
                raise RuntimeError(
                    f"the attacks of this comparison leave {100 * check['pgd_acc']:.1f}% (PGD) / "
                    f"{100 * check['aa_acc']:.1f}% (AutoAttack) of an undefended model robust at eps {CHECK_EPS}: too "
                    "weak to report (expected ~0%)"
                )
        store.put(seed, name, row)
        print(
            f"seed {seed} {name}: trained in {seconds:.0f} s; PGD {row['pgd_seconds']:.0f} s, AutoAttack "
            f"{row['aa_seconds']:.0f} s; clean {row['clean_acc']:.4f} PGD {row['pgd_acc']:.4f} AA {row['aa_acc']:.4f}",
            file=sys.stderr,
        )


# ---- statistics and tables ------------------------------------------------------------------------------
def summarise(runs: dict[int, dict[str, dict]], s: Settings) -> dict:
    seeds = sorted(runs)
    names = [n for n in method_names(s) if all(n in runs[k] for k in seeds)]
    summary: dict = {"seeds": seeds, "methods": {}, "per_class": {}, "tests": {}}
    if "Standard" in runs[seeds[0]]:
        summary["standard"] = runs[seeds[0]]["Standard"]
    for name in names:
        summary["methods"][name] = {key: mean_std([runs[k][name][key] for k in seeds]) for key, _, _ in METRICS}
        summary["per_class"][name] = {
            kind: [mean_std([runs[k][name][kind][c] for k in seeds]) for c in range(10)]
            for kind in ("pgd_per_class", "worst_case_per_class")
        }
    trained_names = names
    if len(seeds) < 2:
        return summary
    for reference in (BASES[s.base], "DRO (DONE)"):
        if reference not in trained_names:
            continue
        family = summary["tests"].setdefault(reference, {})
        for key, _, _ in METRICS:
            values = {n: summary["methods"][n][key]["values"] for n in trained_names}
            family[key] = paired_tests(values, reference)
    return summary


def _cell(stat: dict) -> str:
    return f"{100 * stat['mean']:.2f}" + ("" if math.isnan(stat["std"]) else f" ± {100 * stat['std']:.2f}")


def print_tables(summary: dict, s: Settings, console: Console | None = None) -> None:
    console = console or Console(width=220)
    base = BASES[s.base]
    table = Table(
        title=f"MNIST Linf eps {s.eps:g}: {base} base, MLP {s.hidden}, {s.epochs} epochs; mean ± std over seeds "
        f"{summary['seeds']}, in %; PGD-{s.pgd_steps}x{s.pgd_restarts} on the test set, AutoAttack and worst case "
        f"on its first {s.autoattack_examples}; * = differs from {base} (paired t-test, Holm)"
    )
    table.add_column("method")
    for _, label, _ in METRICS:
        table.add_column(label, justify="right")
    tests = summary["tests"].get(base, {})
    for name, stats_ in summary["methods"].items():
        cells = []
        for key, _, _ in METRICS:
            mark = tests.get(key, {}).get(name, {}).get("significant", False)
            cells.append(_cell(stats_[key]) + (" *" if mark else ""))
        table.add_row(name, *cells)
    console.print(table)
    if "standard" in summary:
        st = summary["standard"]
        check = st.get("check", {})
        nan = float("nan")
        console.print(
            f"undefended Standard model (seed {summary['seeds'][0]}): clean {100 * st['clean_acc']:.2f}%; "
            f"eps {s.eps:g}: PGD-{s.pgd_steps}x{s.pgd_restarts} {100 * st['pgd_acc']:.2f}%, AutoAttack "
            f"{100 * st['aa_acc']:.2f}%, worst case {100 * st['worst_case_acc']:.2f}%; eps {CHECK_EPS:g}: PGD "
            f"{100 * check.get('pgd_acc', nan):.2f}%, AutoAttack {100 * check.get('aa_acc', nan):.2f}%"
        )
    per_class = Table(title="per-class robust accuracy (PGD, whole test set), mean over seeds, in %")
    per_class.add_column("method")
    for c in range(10):
        per_class.add_column(str(c), justify="right")
    for name, kinds in summary["per_class"].items():
        per_class.add_row(name, *[f"{100 * v['mean']:.1f}" for v in kinds["pgd_per_class"]])
    console.print(per_class)
    for reference, family in summary["tests"].items():
        detail = Table(title=f"differences to {reference} (method − {reference}), points: mean [95% CI], Holm p")
        detail.add_column("metric")
        others = [n for n in summary["methods"] if n not in (reference, "Standard")]
        for name in others:
            detail.add_column(name, justify="right")
        for key, label, _ in METRICS:
            cells = []
            for name in others:
                row = family[key][name]
                test = "not tested" if math.isnan(row["p"]) else f"p={row['p_holm']:.2g}"
                lo, hi = row["ci95"]
                star = " *" if row["significant"] else ""
                cells.append(f"{100 * row['mean']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] {test}{star}")
            detail.add_row(label, *cells)
        console.print(detail)
    for line in claim_verdicts(summary, s):
        console.print(line)


def claim_verdicts(summary: dict, s: Settings) -> list[str]:
    """DONE's claims (higher average robust accuracy and worst-30% class robust accuracy) against each method."""
    lines = []
    family = summary["tests"].get("DRO (DONE)", {})
    for key, label, _ in METRICS[1:]:
        for other, row in family.get(key, {}).items():
            lo, hi = row["ci95"]  # other − DRO: the claim "DRO is higher" is a negative difference
            claim = {"mean": -row["mean"], "significant": row["significant"]}
            lines.append(
                f"claim 'DRO (DONE) has a higher {label} than {other}': DRO − {other} = {-100 * row['mean']:+.2f} "
                f"[{-100 * hi:+.2f}, {-100 * lo:+.2f}] points -> {verdict(claim, higher_is_better=True)}"
            )
    return lines


# ---- the validation check behind the base and eps -----------------------------------------------------
def select_base(s: Settings, root: str, candidates: list[tuple[str, float]], out: Path, num_val: int) -> dict:
    """Train each (base, eps) for seed 0 and attack the first ``num_val`` *validation* images with PGD-20 (CE),
    PGD-20 (margin) and APGD-T: clean and robust accuracy, the per-example worst case, and the gap between the
    CE PGD and the worst case (gradient masking shows as a large gap). The test split is not read."""
    full = mnist_splits(root)
    data = {"train": tuple(t[: s.num_train] for t in full["train"]), "val": full["val"], "test": full["val"]}
    vx, vy = (t[:num_val] for t in full["val"])
    rows = []
    for base, eps in candidates:
        trial = Settings(**{**asdict(s), "base": base, "eps": eps})
        steps = math.ceil(len(data["train"][1]) / s.batch_size)
        module = build(BASES[base], trial, 0, steps)
        seconds = fit(module, TensorSplitsDataModule(data, batch_size=s.batch_size, seed=0), s.epochs, 0, s.epochs)
        attacks = [
            AttackSpec(name="native_pgd", eps=eps, steps=20, step_size=2.5 * eps / 20, loss="ce"),
            AttackSpec(name="native_pgd", eps=eps, steps=20, step_size=2.5 * eps / 20, loss="margin"),
            AttackSpec(name="apgd_t", eps=eps, steps=100),
        ]
        check = AdversarialEvaluation(attacks, num_examples=None, batch_size=500, seed=0, print_table=False)
        summary = check.evaluate(
            module.classifier.eval(), TensorDataset(vx, vy), 10, module.bounds, torch.device("cpu")
        )
        accs = {name: res["robust_acc"] for name, res in summary["attacks"].items()}
        row = {"base": base, "eps": eps, "train_seconds": seconds, "clean_acc": summary["clean_acc"], **accs}
        row["masking_gap"] = accs[attacks[0].metric_name] - accs["ensemble"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    table = Table(title=f"base and eps on the first {num_val} validation images (seed 0, {s.epochs} epochs)")
    for column in ("base", "eps", "clean", "PGD-20 CE", "PGD-20 margin", "APGD-T", "worst case", "CE − worst"):
        table.add_column(column, justify="right")
    for r in rows:
        robust = [v for k, v in r.items() if k.startswith(("native", "apgd"))]
        table.add_row(
            r["base"],
            f"{r['eps']:g}",
            f"{100 * r['clean_acc']:.1f}",
            *[f"{100 * v:.1f}" for v in robust],
            f"{100 * r['ensemble']:.1f}",
            f"{100 * r['masking_gap']:+.1f}",
        )
    Console(width=160).print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(out.read_text())["candidates"] if out.is_file() else []
    tried = {(r["base"], r["eps"]) for r in rows}
    merged = [r for r in earlier if (r["base"], r["eps"]) not in tried] + rows  # earlier candidates are kept
    write_text_atomically(out, json.dumps({"settings": asdict(s), "candidates": merged}, indent=2))
    return {"candidates": merged}


# ---- main -----------------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings, 2 seeds: a smoke test in seconds")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 3)")
    parser.add_argument("--base", choices=sorted(BASES), default=None, help="base objective (default fgsm_rs)")
    parser.add_argument("--eps", type=float, default=None, help="Linf radius of training and evaluation (0.1)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--seed-list",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="run only these of the seeds (other processes can run the rest into the same JSON)",
    )
    parser.add_argument("--root", default="data", help="MNIST data folder (docs/mnist.md)")
    parser.add_argument("--out", type=Path, default=Path("runs/mnist_reweighting"), help="weights and attack cache")
    parser.add_argument("--json", type=Path, default=Path("runs/mnist_reweighting.json"))
    parser.add_argument("--select-base", action="store_true", help="the validation check behind base and eps")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=["fgsm_rs:0.3", "pgd_at:0.3"],
        metavar="BASE:EPS",
        help="(base, eps) pairs of --select-base (default fgsm_rs:0.3 pgd_at:0.3)",
    )
    args = parser.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error("--seeds must be >= 1")
        s.seeds = list(range(args.seeds))
    if args.base is not None:
        s.base = args.base
    if args.eps is not None:
        if not 0 < args.eps <= 1:
            parser.error("--eps must lie in (0, 1] (pixel units)")
        s.eps = args.eps
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error("--epochs must be >= 1")
        s.epochs = args.epochs
    return s, args


def print_like_for_like(s: Settings) -> None:
    reference = build(BASES[s.base], s, s.seeds[0], 1)
    for name in REWEIGHTED:
        diff = config_diff(reference, build(name, s, s.seeds[0], 1))
        print(f"config diff {BASES[s.base]} -> {name} (seed {s.seeds[0]}): {diff}")


def main(argv: list[str] | None = None) -> dict:
    s, args = parse(argv)
    quiet_lightning()
    if args.select_base:
        candidates = [(c.split(":")[0], float(c.split(":")[1])) for c in args.candidates]
        if any(base not in BASES or not 0 < eps <= 1 for base, eps in candidates):
            raise SystemExit(f"--candidates: each is BASE:EPS with BASE in {sorted(BASES)} and 0 < EPS <= 1")
        if args.quick:
            candidates = [("fgsm_rs", s.eps)]
        num_val = 1000 if not args.quick else 40
        return select_base(s, args.root, candidates, args.json.with_name(args.json.stem + "_base.json"), num_val)
    print_like_for_like(s)
    store = RunStore(args.json, asdict(s))
    start = time.perf_counter()
    mine = args.seed_list or s.seeds
    if not set(mine) <= set(s.seeds):
        raise SystemExit(f"--seed-list {mine} must be among the seeds {s.seeds}")
    for seed in mine:
        run_seed(s, seed, store, args.root, args.out)
    store.refresh()
    done = [seed for seed in s.seeds if all(m in store.runs.get(seed, {}) for m in method_names(s))]
    if done != s.seeds:
        print(
            f"seeds finished: {done} of {s.seeds}; rerun without --seed-list when the others are done", file=sys.stderr
        )
        return {"settings": asdict(s), "runs": store.runs, "summary": None}
    runs = {seed: store.runs[seed] for seed in s.seeds}
    summary = summarise(runs, s)
    print_tables(summary, s)
    store.write(summary=summary, complete=True)
    print(f"runs: {args.json}; {time.perf_counter() - start:.0f} s in this call", file=sys.stderr)
    return {"settings": asdict(s), "runs": runs, "summary": summary}


if __name__ == "__main__":
    main()
