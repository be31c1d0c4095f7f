"""The calibration comparison experiment (examples/compare_calibration.py) end to end in --quick mode."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare_calibration.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_calibration", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_one_table_with_every_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    rows = example.main(["--quick", "--json", str(tmp_path / "rows.json")])
    assert [row["method"] for row in rows] == list(example.METHODS)
    for row in rows:
        for part in ("in_distribution", "under_shift"):
            metrics = row[part]
            assert set(metrics) >= {"clean_acc", "robust_acc", "worst30_robust_acc", "ece"}
            assert all(0.0 <= metrics[key] <= 1.0 for key in ("clean_acc", "robust_acc", "worst30_robust_acc", "ece"))
            assert metrics["robust_acc"] <= metrics["clean_acc"] + 1e-6
            assert metrics["worst30_robust_acc"] <= metrics["robust_acc"] + 1e-6
    table = capsys.readouterr().out
    for name in example.METHODS:
        assert name in table
    assert "PGD-3 Linf eps=0.1" in table and "shift: ECE" in table
    written = json.loads((tmp_path / "rows.json").read_text())
    assert written["settings"]["epochs"] == 2 and len(written["rows"]) == len(example.METHODS)
