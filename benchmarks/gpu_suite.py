"""GPU speed suite: robustlit against plain PyTorch loops doing the same work, in the same run (docs/speed.md).

On CUDA it times
  1. one TRADES epoch (Zhang et al. 2019; 10 KL-PGD steps, beta 6) of PreActResNet-18 on CIFAR-shaped random
     data, in four settings: fp32; bf16 (``precision: bf16-mixed``); bf16 + channels_last; + torch.compile;
  2. AutoAttack (standard, Linf 8/255; Croce and Hein 2020) throughput, robustlit's ``build_attack`` against
     pyautoattack called directly;
  3. certification throughput (Cohen et al. 2019, CERTIFY with n0 + n samples per image), robustlit's
     ``certify_many`` against a plain noise-forward-argmax-count loop;
each as robustlit time over plain time (<= 1.1 is the goal), plus the achieved fraction of the device's peak
(FLOPs counted by ``torch.utils.flop_counter`` on one step, over the time, against a table of peaks by
device name; ``--peak-tflops`` overrides it). Without CUDA it exits 0 with a message unless ``--tiny``,
which runs every part on a tiny model and tiny data on the CPU in seconds (the test suite does).

    python benchmarks/gpu_suite.py                 # on a CUDA machine
    python benchmarks/gpu_suite.py --tiny          # anywhere, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec
from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.data.base import RobustDataModule
from robustlit.data.device_resident import DeviceResidentLoader
from robustlit.methods import TRADES
from robustlit.models import Normalize, PreActResNet18, SmallCNN

#: Dense tensor-core peaks in TFLOP/s by device-name fragment: (bf16, tf32). fp32 settings are compared with
#: the TF32 peak because cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32).
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 494.0),
    "H100 SXM": (989.0, 494.0),
    "H100 PCIe": (756.0, 378.0),
    "H100": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10": (125.0, 62.5),
}


@dataclass(frozen=True)
class Setting:
    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


SETTINGS = (
    Setting("fp32"),
    Setting("bf16", bf16=True),
    Setting("bf16+channels_last", bf16=True, channels_last=True),
    Setting("bf16+channels_last+compile", bf16=True, channels_last=True, compile=True),
)


@dataclass(frozen=True)
class Shape:
    """Model and data of a run: PreActResNet-18 on 3x32x32 (GPU) or a tiny CNN on 3x8x8 (``--tiny``)."""

    tiny: bool
    examples: int
    batch_size: int
    steps: int

    @property
    def image(self) -> tuple[int, int, int]:
        return (3, 8, 8) if self.tiny else (3, 32, 32)

    def backbone(self) -> nn.Module:
        torch.manual_seed(0)
        return SmallCNN(10, 3, width=4, hidden=16) if self.tiny else PreActResNet18(10, 3)


MEAN, STD, EPS, STEP, BETA = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), 8 / 255, 2 / 255, 6.0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], object]) -> float:
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def peak_tflops(device: torch.device, bf16: bool, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in PEAK_TFLOPS.items():
        if fragment in name:
            return peaks[0] if bf16 else peaks[1]
    return None


# ---- 1. TRADES epoch -------------------------------------------------------------------------------------
class _TensorData(RobustDataModule):
    """Random CIFAR-shaped data, device-resident (the whole set on the accelerator)."""

    mean, std = MEAN, STD

    def __init__(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        super().__init__(batch_size=batch_size, device_resident=True)
        self.x, self.y = x, y

    def resident_train_split(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y


def robustlit_epoch(shape: Shape, setting: Setting, data: _TensorData, device: torch.device) -> float:
    module = TRADES(
        backbone=shape.backbone(), mean=MEAN, std=STD, beta=BETA, eps=EPS, step_size=STEP, steps=shape.steps,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        channels_last=setting.channels_last, compile=setting.compile,
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=1, accelerator=device.type, devices=1, precision="bf16-mixed" if setting.bf16 else "32-true",
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0,
    )  # fmt: skip
    return timed(device, lambda: trainer.fit(module, data))


def plain_model(shape: Shape, setting: Setting, device: torch.device) -> nn.Module:
    model = nn.Sequential(Normalize(MEAN, STD), shape.backbone()).to(device)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if setting.compile:
        model.compile()
    return model


def plain_trades_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, shape: Shape, setting: Setting
) -> None:
    device = x.device
    with autocast(device, setting.bf16):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            p_clean = F.log_softmax(model(x).float(), dim=1)
        x_adv = x + 0.001 * torch.randn_like(x)
        for _ in range(shape.steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv).float(), dim=1), p_clean, log_target=True, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + STEP * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
        for p in model.parameters():
            p.requires_grad_(True)
        model.train()
        optimizer.zero_grad()
        logits_clean, logits_adv = model(x).float(), model(x_adv).float()
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits_clean, 1), log_target=True, reduction="none")
        loss = (F.cross_entropy(logits_clean, y, reduction="none") + BETA * kl.sum(1)).mean()
    loss.backward()
    optimizer.step()


def plain_epoch(shape: Shape, setting: Setting, loader: DeviceResidentLoader, device: torch.device) -> float:
    model = plain_model(shape, setting, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run() -> None:
        for x, y in loader:
            if setting.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            plain_trades_step(model, optimizer, x, y, shape, setting)

    return timed(device, run)


def trades_step_flops(shape: Shape, device: torch.device) -> int:
    """FLOPs of one TRADES step on a full batch, from the counted forward FLOPs F of the batch: the clean pass
    (F), each attack step (forward + input gradient, about 2F), the two training passes with their backward
    (input and weight gradients, about 3F each): F (1 + 2 steps + 6)."""
    model = plain_model(shape, Setting("fp32"), device).eval()
    x = torch.rand(shape.batch_size, *shape.image, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() * (1 + 2 * shape.steps + 6)


# ---- 2. attack throughput --------------------------------------------------------------------------------
def attack_rows(shape: Shape, device: torch.device, repeats: int) -> list[str]:
    torch.manual_seed(0)
    model = nn.Sequential(Normalize(MEAN, STD), shape.backbone()).to(device).eval()
    n = 16 if shape.tiny else 1000
    x = torch.rand(n, *shape.image, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)  # every example correctly classified: the attack works on all of them
    if shape.tiny:  # the standard suite (Square: 5000 queries) does not fit in seconds; APGD-CE does
        spec = AttackSpec("apgd", "Linf", EPS, steps=5)
        import torchattacks

        plain_attack = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=5, n_restarts=1, loss="ce", seed=0)

        def plain() -> object:
            return plain_attack(x, y)
    else:
        spec = AttackSpec("autoattack", "Linf", EPS)
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, norm="Linf", eps=EPS, version="standard", device=device, seed=0)
        adversary.verbose = False

        def plain() -> object:
            return adversary.run_standard_evaluation(x, y, bs=500)

    attack = build_attack(spec, model, 10, (0.0, 1.0), batch_size=500)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(timed(device, lambda: attack(x, y)))
        theirs.append(timed(device, plain))
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    rate, plain_rate = n / statistics.median(ours), n / statistics.median(theirs)
    return [f"| attack {spec.metric_name} | {rate:,.1f} images/s | {plain_rate:,.1f} images/s | {ratio:.3f} | n/a |"]


# ---- 3. certification throughput -------------------------------------------------------------------------
def certify_rows(shape: Shape, device: torch.device, repeats: int, override: float | None) -> list[str]:
    torch.manual_seed(0)
    model = nn.Sequential(Normalize(MEAN, STD), shape.backbone()).to(device).eval()
    images, n0, n, batch = (4, 20, 100, 256) if shape.tiny else (64, 100, 1000, 4096)
    xs = torch.rand(images, *shape.image, device=device)
    smoothed = SmoothedClassifier(model, 0.25)

    def ours() -> object:
        generators = [torch.Generator(device=device).manual_seed(i) for i in range(images)]
        return smoothed.certify_many(list(xs), n0, n, 0.001, batch, generators)

    def plain() -> None:  # the same forward passes, packed the same way, no robustlit
        per_pass = max(1, batch // max(n0, n))
        with torch.no_grad():
            for start in range(0, images, per_pass):
                group = xs[start : start + per_pass]
                for samples in (n0, n):
                    noisy = group.repeat_interleave(samples, 0)
                    noisy = noisy + 0.25 * torch.randn_like(noisy)
                    model(noisy).argmax(1).view(len(group), samples)

    ours(), plain()  # warm-up
    mine, theirs = [], []
    for _ in range(repeats):
        mine.append(timed(device, ours))
        theirs.append(timed(device, plain))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(xs[:1])
    flops = counter.get_total_flops() * images * (n0 + n)
    peak = peak_tflops(device, False, override)
    fraction = f"{flops / statistics.median(mine) / (peak * 1e12):.1%}" if peak else "n/a"
    samples = images * (n0 + n)
    ratio = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
    return [
        f"| certification ({images} images, n0={n0}, n={n}) | {samples / statistics.median(mine):,.0f} samples/s "
        f"| {samples / statistics.median(theirs):,.0f} samples/s | {ratio:.3f} | {fraction} |"
    ]


# ---- the suite --------------------------------------------------------------------------------------------
def trades_rows(
    shape: Shape, device: torch.device, repeats: int, override: float | None, compile_ok: bool
) -> Iterator[str]:
    torch.manual_seed(0)
    x = torch.rand(shape.examples, *shape.image)
    y = torch.randint(0, 10, (shape.examples,))
    data = _TensorData(x, y, shape.batch_size)
    loader = DeviceResidentLoader(x, y, shape.batch_size, device)
    epoch_flops = trades_step_flops(shape, device) * len(loader)
    for setting in SETTINGS:
        if setting.compile and not compile_ok:
            yield f"| TRADES epoch, {setting.name} | skipped (--tiny: compilation takes longer than the run) | | | |"
            continue
        robustlit_epoch(shape, setting, data, device), plain_epoch(shape, setting, loader, device)  # warm-up
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(robustlit_epoch(shape, setting, data, device))
            theirs.append(plain_epoch(shape, setting, loader, device))
        ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        peak = peak_tflops(device, setting.bf16, override)
        fraction = f"{epoch_flops / statistics.median(ours) / (peak * 1e12):.1%}" if peak else "n/a"
        yield (
            f"| TRADES epoch, {setting.name} | {statistics.median(ours):.3f} s | {statistics.median(theirs):.3f} s "
            f"| {ratio:.3f} | {fraction} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model and data, any device, seconds")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=None, help="training examples (default 10,000; tiny 64)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak, overriding the table")
    parser.add_argument("--compile", action="store_true", help="with --tiny: run the compiled setting too")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if not args.tiny and not torch.cuda.is_available() and args.device in (None, "cuda"):
        print("gpu_suite: no CUDA device; nothing to time (run with --tiny for the CPU smoke mode).")
        return 0
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    shape = Shape(
        args.tiny, args.examples or (64 if args.tiny else 10_000), 32 if args.tiny else 512, 2 if args.tiny else 10
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_suite on {name} ({'tiny' if args.tiny else 'PreActResNet-18, 3x32x32'}), medians of {args.repeats}")
    print("| work | robustlit | plain PyTorch | ratio (robustlit / plain time) | fraction of peak |")
    print("|---|---|---|---|---|")
    for row in trades_rows(shape, device, args.repeats, args.peak_tflops, compile_ok=not args.tiny or args.compile):
        print(row, flush=True)
    for row in attack_rows(shape, device, args.repeats) + certify_rows(shape, device, args.repeats, args.peak_tflops):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
