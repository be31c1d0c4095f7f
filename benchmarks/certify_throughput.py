"""Certification throughput vs plain batched inference, measured side by side (goal: ratio >= 0.9).

CERTIFY (Cohen et al. 2019, Section 3) spends its time in forward passes of the base model on noisy
copies of one input. This script times ``SmoothedClassifier.certify`` (n0 + n noise samples per example,
``batch_size`` at a time: noise draw, forward, argmax, vote counting, Clopper-Pearson bound, radius) and
plain ``model(x)`` on ready-made batches of the same size, alternating the two in every repetition, and
reports medians in noise samples per second and the median of the per-repetition ratios. Default model:
the digits smoothing model (SmallCNN width 16 on 1x8x8 inputs, as in configs/digits/smoothing.yaml), on
CUDA when available.

    python benchmarks/certify_throughput.py [--batch-size 1000] [--n 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.models import SmallCNN
from robustlit.models.normalize import Normalize


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_throughput(model: nn.Module, batch: torch.Tensor, num_batches: int) -> float:
    """Samples per second of ``model(batch)`` under no_grad, ``num_batches`` times."""
    _synchronize(batch.device)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(num_batches):
            model(batch).argmax(dim=1)
    _synchronize(batch.device)
    return num_batches * batch.shape[0] / (time.perf_counter() - start)


def certify_throughput(
    smoothed: SmoothedClassifier, x: torch.Tensor, n0: int, n: int, batch_size: int, seed: int
) -> float:
    """Noise samples per second of one full CERTIFY call (n0 selection + n estimation samples)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    _synchronize(x.device)
    start = time.perf_counter()
    smoothed.certify(x, n0=n0, n=n, alpha=0.001, batch_size=batch_size, generator=generator)
    _synchronize(x.device)
    return (n0 + n) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = nn.Sequential(Normalize((0.3,), (0.38,)), SmallCNN(10, 1, width=args.width, hidden=128))
    model = model.to(device).eval()
    smoothed = SmoothedClassifier(model, sigma=0.25)
    x = torch.rand(1, 8, 8, device=device)
    batch = torch.rand(args.batch_size, 1, 8, 8, device=device)
    num_batches = max(1, round((args.n0 + args.n) / args.batch_size))

    plain_throughput(model, batch, 2)  # warm-up (allocator, kernels)
    certify_throughput(smoothed, x, args.n0, args.batch_size, args.batch_size, seed=0)
    plain, certify = [], []
    for rep in range(args.repeats):  # interleaved, so that load changes hit both alike
        plain.append(plain_throughput(model, batch, num_batches))
        certify.append(certify_throughput(smoothed, x, args.n0, args.n, args.batch_size, seed=rep))
    # The ratio is the median of the per-repetition (paired) ratios: robust to a machine whose load drifts.
    ratio = statistics.median(c / p for c, p in zip(certify, plain, strict=True))
    print(
        f"certify_throughput: SmallCNN(width={args.width}) on 1x8x8, {device.type}, batch {args.batch_size}, "
        f"n0={args.n0} n={args.n}, medians of {args.repeats}: certification {statistics.median(certify):,.0f} "
        f"noise samples/s vs plain forward {statistics.median(plain):,.0f} samples/s -> ratio {ratio:.3f} "
        f"({'meets' if ratio >= 0.9 else 'BELOW'} the goal >= 0.9)"
    )


if __name__ == "__main__":
    main()
