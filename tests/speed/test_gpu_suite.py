"""benchmarks/gpu_suite.py: its CPU ``--tiny`` mode runs every part in seconds; without CUDA and without
``--tiny`` it exits 0 at once (``make bench`` runs every benchmark)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_suite.py"


def _suite():  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_reports_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert _suite().main(["--tiny", "--repeats", "1", "--peak-tflops", "1.0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == [
        "TRADES epoch, fp32",
        "TRADES epoch, bf16",
        "TRADES epoch, bf16+channels_last",
        "TRADES epoch, bf16+channels_last+compile",
        "attack apgd5_linf_0.03137",
        "certification (4 images, n0=20, n=100)",
    ]
    cells = [[c.strip() for c in row.split("|")[1:-1]] for row in rows[1:]]
    for row in cells[:3] + cells[4:]:  # a ratio, and with --peak-tflops a fraction of peak (not for attacks)
        assert float(row[3]) > 0 and (row[4].endswith("%") or row[0].startswith("attack")), row
    assert "skipped" in rows[4]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA message is for machines without CUDA")
def test_without_cuda_exits_zero_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert _suite().main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
