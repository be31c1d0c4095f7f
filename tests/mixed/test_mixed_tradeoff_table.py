"""The trade-off table of examples/mixed_tradeoff.py: mean ± sample std over seeds, per-example worst cases combined
across evaluations, and the measured constant-alpha curve read at a given worst case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example():
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("mixed_tradeoff_example", EXAMPLES / "mixed_tradeoff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cells_are_mean_and_sample_std_over_seeds_and_one_seed_is_printed_as_is() -> None:
    module = _example()
    assert module._mean_std([0.9, 0.8, 0.7]) == "80.0 ± 10.0%"  # sample std (ddof 1) of 90, 80, 70
    assert module._mean_std([0.9637]) == "96.4%"


def test_rows_combine_attacks_of_several_evaluations_per_example() -> None:
    module = _example()
    aa, apgd, ce, t = module.COLUMNS
    first = {"per_example": {"index": [0, 1, 2, 3], "standard/clean": [1, 1, 1, 0], f"standard/{aa}": [1, 1, 0, 0],
                             f"standard/{apgd}": [1, 1, 1, 0]}}  # fmt: skip
    second = {"per_example": {"index": [0, 1, 2, 3], f"mixture/{ce}": [1, 0, 1, 0], f"mixture/{t}": [1, 1, 1, 0]}}
    row = module._row((first, "standard"), (second, "mixture"))
    assert row["clean_acc"] == 0.75
    assert row["robust_acc"] == {aa: 0.5, apgd: 0.75, ce: 0.5, t: 0.75}
    assert row["worst_robust_acc"] == 0.25  # only example 0 survives everything
    with pytest.raises(RuntimeError, match="different examples"):
        module._row((first, "standard"), ({"per_example": {"index": [3, 2, 1, 0]}}, "mixture"))


def test_curve_is_its_upper_envelope_read_by_linear_interpolation_at_a_worst_case() -> None:
    module = _example()
    curve = [
        {"worst": 0.1, "clean": 0.99},  # dominated by the next point
        {"worst": 0.2, "clean": 0.99},
        {"worst": 0.26, "clean": 0.97},
        {"worst": 0.26, "clean": 0.87},  # same robustness, less clean: not the curve
        {"worst": 0.25, "clean": 0.95},  # dominated
    ]
    assert module._curve_clean_at(curve, 0.23) == pytest.approx(0.98)
    assert module._curve_clean_at(curve, 0.26) == pytest.approx(0.97)
    assert module._curve_clean_at(curve, 0.05) == pytest.approx(0.99)
    assert module._curve_clean_at(curve, 0.3) == pytest.approx(0.97)  # beyond the curve: its most robust point
