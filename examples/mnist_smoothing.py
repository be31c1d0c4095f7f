"""Constant against input-dependent sigma for randomized smoothing on MNIST (N = 784): certified accuracy by radius.

Súkeník, Kuvshinov and Günnemann (ICML 2022) certify a noise level sigma(x) that varies with the input with a sound
radius, and propose sigma(x) = sigma_b exp(r (d_k(x) - m)) (d_k: mean L2 distance to the k nearest training images),
claiming that on CIFAR-10 and MNIST it mitigates some problems of constant-sigma smoothing (the certified-accuracy
"waterfall" and the accuracy/robustness trade-off) at a small cost, curbed by the curse of dimensionality
(docs/smoothing_mnist.md).

- Four models per seed with the same backbone, optimiser, epochs and initial weights, trained with Gaussian noise
  augmentation (robustlit's ``GaussianSmoothing``): constant sigma 0.25 and 0.50 (Cohen et al. 2019), and sigma(x)
  with sigma_b 0.25 and 0.50, r = 0.01, k = 20, m = 1.5, trained at 1.052 and 1.06 x sigma(x) (0.263 / 0.25 and
  0.53 / 0.5, as Súkeník et al.; their MNIST values of r, k and m as in the third-party re-implementation, not
  checked against the paper). The reference set of d_k is the 55,000 training images.
- CERTIFY (Cohen et al.) with n0 = 100, n = 10,000, alpha = 0.001 on every 20th test image (500 images, as Cohen
  et al. on CIFAR-10); sigma(x) is certified only with the input-dependent radius
  (``robustlit.certify.input_dependent_radius``). A GPU run would use n = 100,000 on all 10,000 test images.
- Certified accuracy at radii 0 .. 2 (step 0.25), the average certified radius and the abstention rate, per seed;
  mean ± std over 3 seeds; paired t-tests over seeds with Holm's correction (each sigma(x) model against the
  constant sigma with the same base); the certified-accuracy curves as a figure.

    python examples/mnist_smoothing.py            # 3 seeds -> runs/mnist_smoothing.json, runs/mnist_smoothing/*.png
    python examples/mnist_smoothing.py --quick    # seconds: every code path, meaningless numbers

Training the sigma(x) models: the noise level of each training image is sigma(x) of that image, computed once for
the training set (the distances by matrix products, float32) and looked up by index in each step, because the exact
k-NN search per batch would dominate training; validation, test accuracy on noise and the certificates use the
exact sigma(x) of ``TrainingSetKNNSigma``. Resumable: weights under ``runs/mnist_smoothing/``, the JSON rewritten
after every (seed, method), certificates appended per image.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import Tensor

from robustlit.certify.radius import curse_of_dimensionality_ratio_bounds
from robustlit.data.indexed import IndexedDataset
from robustlit.experiments import RunStore, mean_std
from robustlit.experiments.mnist_data import TensorSplitsDataModule, mnist_splits
from robustlit.experiments.paired import holm_correct, paired_difference, verdict
from robustlit.experiments.training import fit, quiet_lightning
from robustlit.methods.gaussian_smoothing import GaussianSmoothing, TrainingSetKNNSigma
from robustlit.models import MLP
from robustlit.utils.atomic import atomic_target
from robustlit.utils.integrity import weights_checksum

METHODS = ("sigma 0.25", "sigma(x) 0.25", "sigma 0.50", "sigma(x) 0.50")
PAIRS = (("sigma(x) 0.25", "sigma 0.25"), ("sigma(x) 0.50", "sigma 0.50"))


@dataclass
class Settings:
    """Everything that defines a run (written to the JSON; a stored run is reused only with equal settings)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    backbone: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    rate: float = 0.01
    k: int = 20
    normaliser: float = 1.5
    train_scale: dict[str, float] = field(default_factory=lambda: {"0.25": 0.263 / 0.25, "0.50": 0.53 / 0.5})
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    skip: int = 20
    num_certify: int = 500
    certify_batch: int = 2000
    radii: list[float] = field(default_factory=lambda: [0.25 * i for i in range(9)])
    num_train: int | None = None


def quick_settings() -> Settings:
    """Seconds: two seeds, tiny sets (numbers are not meaningful)."""
    return Settings(
        seeds=[0, 1], hidden=[32], epochs=1, n0=10, n=100, skip=1, num_certify=6, certify_batch=110, num_train=400
    )


# ---- the models ----------------------------------------------------------------------------------------
class IndexedSigmaSmoothing(GaussianSmoothing):
    """GaussianSmoothing whose *training* noise level is looked up by training-set index from a table of sigma(x)
    computed once (``train_sigma``); everything else (validation, certificates) uses ``sigma_fn`` itself."""

    def __init__(self, train_sigma: Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_sigma = train_sigma
        self._index: Tensor | None = None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        dataset = getattr(datamodule, "train_dataset", None)
        if stage == "fit" and self.train_sigma is not None and not isinstance(dataset, IndexedDataset):
            datamodule.train_dataset = IndexedDataset(dataset)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        self._index = batch[2] if len(batch) > 2 else None
        try:
            return super().training_step((batch[0], batch[1]), batch_idx)
        finally:
            self._index = None

    def sigma_of(self, x: Tensor) -> Tensor:
        if self.training and self._index is not None and self.train_sigma is not None:
            return self.train_sigma[self._index.to(self.train_sigma.device)].to(dtype=x.dtype, device=x.device)
        return super().sigma_of(x)


def knn_sigma(sigma_b: float, s: Settings, train_x: Tensor) -> TrainingSetKNNSigma:
    sigma = TrainingSetKNNSigma(sigma_base=sigma_b, rate=s.rate, k=s.k, normaliser=s.normaliser)
    sigma.set_reference(train_x)
    return sigma


def training_sigma_table(sigma: TrainingSetKNNSigma, train_x: Tensor, cache: Path) -> Tensor:
    """sigma(x) of every training image. The mean k-NN distances d_k are computed once with matrix-product distances
    (fast, float32; the certificates use the exact search) and cached on disk by k and the training images."""
    flat = train_x.flatten(1).float()
    key = hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:16]
    path = cache / f"train_knn_k{sigma.k}_{key}.pt"
    if path.is_file():
        d_k = torch.load(path, weights_only=True)
    else:
        ref = sigma.reference
        d_k = torch.cat(
            [
                torch.cdist(q, ref, compute_mode="use_mm_for_euclid_dist").topk(sigma.k, largest=False).values.mean(1)
                for q in flat.split(512)
            ]
        )
        with atomic_target(path) as tmp:  # another process may read it meanwhile
            torch.save(d_k, tmp)
    return sigma.sigma_base * torch.exp(sigma.rate * (d_k - sigma.normaliser))


def build(name: str, s: Settings, seed: int, train_x: Tensor, cache: Path) -> GaussianSmoothing:
    """``name`` with the shared backbone, optimiser and seeded initial weights (the sigma is the only difference)."""
    base = name.split()[-1]
    sigma_b = float(base)
    sigma: Any = sigma_b
    table = None
    scale = 1.0
    if name.startswith("sigma(x)"):
        sigma = knn_sigma(sigma_b, s, train_x)
        table = training_sigma_table(sigma, train_x, cache)
        scale = s.train_scale[base]
    pl.seed_everything(seed, verbose=False)
    return IndexedSigmaSmoothing(
        train_sigma=table,
        sigma=sigma,
        train_sigma_scale=scale,
        backbone=MLP(784, 10, s.hidden),
        mean=(0.1307,),
        std=(0.3081,),
        optimizer=lambda params: torch.optim.Adam(params, lr=s.lr),
    )


# ---- certification -------------------------------------------------------------------------------------
def certify(module: GaussianSmoothing, x: Tensor, y: Tensor, s: Settings, seed: int, tsv: Path) -> list[dict]:
    """CERTIFY every ``skip``-th test image (``num_certify`` of them); rows appended to ``tsv`` as they finish and
    reused on a rerun (each image's noise comes from its own generator, seeded by seed and index)."""
    g = module.eval().smoothed_classifier()
    if tsv.is_file():  # a run killed mid-line left a partial last line: drop it (that image is certified again)
        text = tsv.read_text()
        if not text.endswith("\n"):
            tsv.write_text(text[: text.rfind("\n") + 1])
    done = {row["idx"]: row for row in read_certificates(tsv)} if tsv.is_file() else {}
    if not tsv.is_file():
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("idx\tlabel\tpredict\tradius\tsigma\tp_a_lower\ttime\n")
    rows = []
    indices = list(range(0, len(y), s.skip))[: s.num_certify]
    with tsv.open("a") as out:
        for idx in indices:
            if idx in done:
                rows.append(done[idx])
                continue
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(1_000_003 * seed + idx)
            result = g.certify(x[idx], s.n0, s.n, s.alpha, s.certify_batch, generator=generator)
            row = {
                "idx": idx,
                "label": int(y[idx]),
                "predict": result.prediction,
                "radius": result.radius,
                "sigma": result.sigma,
                "p_a_lower": result.p_a_lower,
                "time": time.perf_counter() - start,
            }
            out.write("\t".join(str(row[k]) for k in row) + "\n")
            out.flush()
            rows.append(row)
    return rows


def read_certificates(tsv: Path) -> list[dict]:
    """The rows of a certificate file written by :func:`certify`."""
    rows = []
    for line in tsv.read_text().splitlines()[1:]:
        idx, label, pred, radius, sigma, p_low, seconds = line.split("\t")
        rows.append(
            {
                "idx": int(idx),
                "label": int(label),
                "predict": int(pred),
                "radius": float(radius),
                "sigma": float(sigma),
                "p_a_lower": float(p_low),
                "time": float(seconds),
            }
        )
    return rows


def certified_accuracy(rows: list[dict], radii: list[float]) -> dict[str, Any]:
    """Certified accuracy at each radius (correct and radius >= r; abstentions are wrong), ACR, abstention rate."""
    n = len(rows)
    correct = [r for r in rows if r["predict"] == r["label"]]
    return {
        "certified_acc": [sum(1 for r in correct if r["radius"] >= radius) / n for radius in radii],
        "acr": sum(r["radius"] for r in correct) / n,
        "abstain": sum(1 for r in rows if r["predict"] == -1) / n,
        "mean_sigma": sum(r["sigma"] for r in rows) / n,
        "num_certified": n,
    }


def run_seed(s: Settings, seed: int, store: RunStore, root: str, folder: Path) -> None:
    full = mnist_splits(root)
    train = tuple(t[: s.num_train] for t in full["train"])
    data = {"train": train, "val": full["val"], "test": full["test"]}
    test_x, test_y = full["test"]
    for name in METHODS:
        if store.get(seed, name) is not None:
            print(f"seed {seed} {name}: reused", file=sys.stderr)
            continue
        module = build(name, s, seed, train[0], folder / "cache")
        path = folder / "models" / f"seed{seed}_{name.replace(' ', '_')}.pt"
        if path.is_file():
            stored = torch.load(path, weights_only=True)
            module.load_state_dict(stored["state_dict"])
            seconds = float(stored["train_seconds"])
        else:
            # no validation: the validation noise of sigma(x) needs the exact k-NN search of 5,000 images, unused here
            seconds = fit(
                module,
                TensorSplitsDataModule(data, batch_size=s.batch_size, seed=seed),
                s.epochs,
                seed,
                validate=False,
            )
            with atomic_target(path) as tmp:
                torch.save({"state_dict": module.state_dict(), "train_seconds": seconds}, tmp)
        start = time.perf_counter()
        weights = weights_checksum(module.state_dict())[:12]  # certificates of other weights are never reused
        tsv = folder / "certificates" / f"seed{seed}_{name.replace(' ', '_')}_{weights}.tsv"
        rows = certify(module, test_x, test_y, s, seed, tsv)
        row = {
            "certificates": tsv.name,
            "train_seconds": seconds,
            "certify_seconds": time.perf_counter() - start,
            **certified_accuracy(rows, s.radii),
        }
        store.put(seed, name, row)
        print(
            f"seed {seed} {name}: trained in {seconds:.0f} s, certified in {row['certify_seconds']:.0f} s; "
            f"certified acc {[round(v, 3) for v in row['certified_acc']]}",
            file=sys.stderr,
        )


# ---- statistics, tables, figure ------------------------------------------------------------------------
def summarise(runs: dict[int, dict[str, dict]], s: Settings) -> dict:
    seeds = sorted(runs)
    names = [m for m in METHODS if all(m in runs[k] for k in seeds)]
    summary: dict = {"seeds": seeds, "methods": {}, "tests": {}}
    for name in names:
        stats_ = {
            f"r={r:g}": mean_std([runs[k][name]["certified_acc"][i] for k in seeds]) for i, r in enumerate(s.radii)
        }
        stats_["acr"] = mean_std([runs[k][name]["acr"] for k in seeds])
        stats_["abstain"] = mean_std([runs[k][name]["abstain"] for k in seeds])
        summary["methods"][name] = stats_
    if len(seeds) < 2:
        return summary
    pairs = [(v, c) for v, c in PAIRS if v in names and c in names]
    for variable, constant in pairs:
        summary["tests"][variable] = {
            key: paired_difference(
                summary["methods"][variable][key]["values"], summary["methods"][constant][key]["values"]
            )
            for key in summary["methods"][variable]
        }
    for key in summary["methods"][names[0]]:  # one Holm family per metric: the sigma(x) models
        holm_correct([summary["tests"][v][key] for v, _ in pairs])
    return summary


def print_tables(summary: dict, s: Settings, console: Console | None = None) -> None:
    console = console or Console(width=220)
    keys = [f"r={r:g}" for r in s.radii] + ["acr", "abstain"]
    table = Table(
        title=f"MNIST randomized smoothing, {s.backbone} {s.hidden}, {s.epochs} epochs: certified accuracy (%) on "
        "every "
        f"{s.skip}th test image ({s.num_certify}), n0={s.n0}, n={s.n:,}, alpha={s.alpha}; mean ± std over seeds "
        f"{summary['seeds']}; * = sigma(x) differs from the constant sigma of its base (paired t-test, Holm)"
    )
    table.add_column("model")
    for key in keys:
        table.add_column(key, justify="right")
    for name, stats_ in summary["methods"].items():
        cells = []
        for key in keys:
            stat = stats_[key]
            scale = 1 if key == "acr" else 100
            digits = 3 if key == "acr" else 1
            cell = f"{scale * stat['mean']:.{digits}f}"
            if not math.isnan(stat["std"]):
                cell += f" ± {scale * stat['std']:.{digits}f}"
            if summary["tests"].get(name, {}).get(key, {}).get("significant"):
                cell += " *"
            cells.append(cell)
        table.add_row(name, *cells)
    console.print(table)
    for variable, rows in summary["tests"].items():
        constant = dict(PAIRS)[variable]
        for key in keys:
            row = rows[key]
            scale = 1 if key == "acr" else 100
            lo, hi = row["ci95"]
            console.print(
                f"{variable} − {constant}, {key}: {scale * row['mean']:+.3g} [{scale * lo:+.3g}, {scale * hi:+.3g}]"
                + ("" if math.isnan(row["p"]) else f", Holm p={row['p_holm']:.2g}")
                + (" *" if row["significant"] else "")
                + (f" -> {verdict(row, higher_is_better=True)}" if key.startswith(("r=", "acr")) else "")
            )
    low, high = curse_of_dimensionality_ratio_bounds(784, 1e-3)
    console.print(
        f"curse of dimensionality, N = 784, p_B = 1e-3: sigma1/sigma0 must stay within ({low:.3f}, {high:.3f})"
    )


def certificate_file(folder: Path, seed: int, name: str, row: dict) -> Path:
    """The per-image certificate file of a run (named in its row; older rows: the one file of that seed and model)."""
    if "certificates" in row:
        return folder / "certificates" / row["certificates"]
    found = sorted((folder / "certificates").glob(f"seed{seed}_{name.replace(' ', '_')}_*.tsv"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one certificate file for seed {seed} {name}; found {found}")
    return found[0]


def curve_figure(runs: dict[int, dict[str, dict]], s: Settings, folder: Path) -> Figure:
    """Certified accuracy against radius on a fine grid, from the per-image certificates: mean over seeds (line) and
    the range over seeds (band)."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    top = max(s.radii)
    grid = [top * i / 200 for i in range(201)]
    for name in METHODS:
        curves = []
        for seed, rows in runs.items():
            certificates = read_certificates(certificate_file(folder, seed, name, rows[name]))
            curves.append(certified_accuracy(certificates, grid)["certified_acc"])
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(grid))]
        low = [min(c[i] for c in curves) for i in range(len(grid))]
        high = [max(c[i] for c in curves) for i in range(len(grid))]
        style = "--" if name.startswith("sigma(x)") else "-"
        (line,) = ax.plot(grid, mean, linestyle=style, label=name)
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("L2 radius (pixel units)")
    ax.set_ylabel("certified accuracy")
    ax.set_title(f"MNIST, {s.num_certify} test images, n = {s.n:,}: mean and range over {len(runs)} seeds")
    ax.legend()
    fig.tight_layout()
    return fig


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings, 2 seeds: a smoke test in seconds")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 3)")
    parser.add_argument("--n", type=int, default=None, help="estimation samples per image (default 10,000)")
    parser.add_argument("--num-certify", type=int, default=None, help="images to certify (default 500)")
    parser.add_argument("--skip", type=int, default=None, help="certify every skip-th test image (default 20)")
    parser.add_argument(
        "--seed-list",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="run only these of the seeds (other processes can run the rest into the same JSON)",
    )
    parser.add_argument("--root", default="data", help="MNIST data folder (docs/mnist.md)")
    parser.add_argument("--out", type=Path, default=Path("runs/mnist_smoothing"), help="weights, certificates, PNG")
    parser.add_argument("--json", type=Path, default=Path("runs/mnist_smoothing.json"))
    args = parser.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    for name in ("seeds", "n", "num_certify", "skip"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.seeds is not None:
        s.seeds = list(range(args.seeds))
    s.n = args.n or s.n
    s.num_certify = args.num_certify or s.num_certify
    s.skip = args.skip or s.skip
    return s, args


def main(argv: list[str] | None = None) -> dict:
    s, args = parse(argv)
    quiet_lightning()
    store = RunStore(args.json, asdict(s))
    start = time.perf_counter()
    mine = args.seed_list or s.seeds
    if not set(mine) <= set(s.seeds):
        raise SystemExit(f"--seed-list {mine} must be among the seeds {s.seeds}")
    for seed in mine:
        run_seed(s, seed, store, args.root, args.out)
    store.refresh()
    done = [seed for seed in s.seeds if all(m in store.runs.get(seed, {}) for m in METHODS)]
    if done != s.seeds:
        print(
            f"seeds finished: {done} of {s.seeds}; rerun without --seed-list when the others are done", file=sys.stderr
        )
        return {"settings": asdict(s), "runs": store.runs, "summary": None}
    runs = {seed: store.runs[seed] for seed in s.seeds}
    summary = summarise(runs, s)
    print_tables(summary, s)
    args.out.mkdir(parents=True, exist_ok=True)
    curve_figure(runs, s, args.out).savefig(args.out / "certified_accuracy.png", dpi=110)
    store.write(summary=summary, complete=True)
    print(
        f"runs: {args.json}; figure: {args.out}/certified_accuracy.png; {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return {"settings": asdict(s), "runs": runs, "summary": summary}


if __name__ == "__main__":
    main()
