"""Time of one robustlit TRADES epoch on digits over a plain PyTorch loop doing the same work.

Same model (SmallCNN, same init), same data order, same TRADES inner maximisation (10 KL-PGD steps,
eval mode) and outer loss, same Adam optimizer. Runs are interleaved (robustlit, plain, robustlit,
...) and the median of each is reported, so both see the same machine load. Goal: ratio <= 1.10.

    python benchmarks/trades_epoch.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from robustlit.data import DigitsDataModule
from robustlit.methods import TRADES
from robustlit.models import Normalize, SmallCNN

EPS, STEP, STEPS, BETA, LR = 0.2, 0.05, 10, 6.0, 2e-3


def fresh_backbone() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(10, 1, width=32)


def robustlit_epoch(data: DigitsDataModule) -> tuple[float, float]:
    module = TRADES(
        backbone=fresh_backbone(),
        mean=data.mean,
        std=data.std,
        beta=BETA,
        eps=EPS,
        step_size=STEP,
        steps=STEPS,
        optimizer=lambda p: torch.optim.Adam(p, lr=LR),
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    torch.manual_seed(1)
    start = time.perf_counter()
    trainer.fit(module, data)
    return time.perf_counter() - start, float(trainer.callback_metrics["train/loss"])


def plain_epoch(data: DigitsDataModule) -> tuple[float, float]:
    model = nn.Sequential(Normalize(data.mean, data.std), fresh_backbone())
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    torch.manual_seed(1)
    start = time.perf_counter()
    total, count = 0.0, 0
    for x, y in data.train_dataloader():
        model.eval()
        with torch.no_grad():
            p_clean = F.log_softmax(model(x), dim=1)
        x_adv = x + 0.001 * torch.randn_like(x)
        for _ in range(STEPS):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, log_target=True, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + STEP * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
        model.train()
        optimizer.zero_grad()
        logits_clean, logits_adv = model(x), model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits_clean, 1), log_target=True, reduction="none")
        loss = (F.cross_entropy(logits_clean, y, reduction="none") + BETA * kl.sum(1)).mean()
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(y), count + len(y)
    return time.perf_counter() - start, total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = least noise on shared machines)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = DigitsDataModule(batch_size=64)
    data.setup("fit")
    robustlit_epoch(data), plain_epoch(data)  # warm-up (allocator, MKL-DNN kernels)
    times: dict[str, list[float]] = {"robustlit": [], "plain": []}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in (("robustlit", robustlit_epoch), ("plain", plain_epoch)):
            seconds, losses[name] = run(data)
            times[name].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    batches = len(data.train_dataloader())
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} batches/epoch={batches}")
    for name in ("robustlit", "plain"):
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:9s} epoch median {medians[name]:.2f}s  [{spread}]  mean train loss {losses[name]:.4f}")
    ratio = medians["robustlit"] / medians["plain"]
    print(f"TRADES epoch time ratio robustlit/plain = {ratio:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
