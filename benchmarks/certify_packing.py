"""Packed certification vs one example at a time, through the Certification callback, side by side.

With n0 + n small relative to the batch size (here n0 = 10, n = 100, batch 1000: a quick certification of
a small model), ``Certification`` packs ``batch_size // (n0 + n)`` examples into each forward pass
(``SmoothedClassifier.certify_many``; docs/speed.md). This script certifies the same digits examples with
the automatic packing and with ``examples_per_pass: 1``, alternating the two in every repetition, checks
that both TSVs hold the same certificates, and prints median examples per second and the median ratio.

    python benchmarks/certify_packing.py [--examples 90] [--n 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from robustlit.callbacks.certification import Certification
from robustlit.certify import ConstantSigma, read_rows
from robustlit.data import DigitsDataModule
from robustlit.models import SmallCNN
from robustlit.models.normalize import Normalize


def timed(callback: Certification, model: nn.Module, dataset: object, path: Path) -> float:
    """Seconds of one ``certify_dataset`` call from an empty TSV."""
    start = time.perf_counter()
    callback.certify_dataset(model, ConstantSigma(0.25), dataset, (0.0, 1.0), path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=90)
    parser.add_argument("--n0", type=int, default=10)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = nn.Sequential(Normalize((0.3,), (0.38,)), SmallCNN(10, 1, width=16, hidden=128)).eval()
    data = DigitsDataModule()
    data.setup("test")
    common = {"n0": args.n0, "n": args.n, "batch_size": args.batch_size, "num_examples": args.examples}
    packed = Certification(**common, resume=False, print_table=False)
    single = Certification(**common, examples_per_pass=1, resume=False, print_table=False)
    ratios, packed_rates, single_rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed(packed, model, data.test_dataset, folder / "warmup.tsv")
        for _ in range(args.repeats):  # interleaved, so that load changes hit both alike
            t_single = timed(single, model, data.test_dataset, folder / "single.tsv")
            t_packed = timed(packed, model, data.test_dataset, folder / "packed.tsv")
            single_rates.append(args.examples / t_single)
            packed_rates.append(args.examples / t_packed)
            ratios.append(t_single / t_packed)
        same = {i: (r.predict, r.radius) for i, r in read_rows(folder / "packed.tsv").items()} == {
            i: (r.predict, r.radius) for i, r in read_rows(folder / "single.tsv").items()
        }
    print(
        f"certification of {args.examples} digits, n0={args.n0}, n={args.n}, batch {args.batch_size} "
        f"({packed.group_size()} examples per pass when packed), CPU threads {torch.get_num_threads()}"
    )
    print(f"one at a time: {statistics.median(single_rates):.1f} examples/s")
    print(f"packed:        {statistics.median(packed_rates):.1f} examples/s")
    print(f"packed / one-at-a-time speed ratio (median of {args.repeats}): {statistics.median(ratios):.2f}")
    print(f"identical certificates: {same}")
    if not same:
        raise SystemExit("packed and one-at-a-time certification disagree")


if __name__ == "__main__":
    main()
