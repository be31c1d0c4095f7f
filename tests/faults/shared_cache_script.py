"""One of two jobs sharing an attack cache folder: ``python shared_cache_script.py CACHE GO OUT``.
Waits for the file GO (so that both jobs attack at the same time), evaluates, writes the summary to OUT."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation


def main(cache: str, go: str, out: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    generator = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(96, 1, 8, 8, generator=generator), torch.randint(0, 10, (96,), generator=generator))
    evaluation = AdversarialEvaluation(
        [AttackSpec(name="pgd", norm="Linf", eps=0.1, steps=40)], num_examples=None, batch_size=2, cache_dir=cache
    )
    while not Path(go).exists():
        time.sleep(0.0005)
    summary = evaluation.evaluate(model, data, 10, (0.0, 1.0), torch.device("cpu"))
    Path(out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:4])
