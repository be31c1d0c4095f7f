"""The trade-off table of examples/mixed_digits.py: several seeds give mean ± sample std per cell."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mixed_digits.py"


def test_cells_are_mean_and_sample_std_over_seeds_and_one_seed_is_printed_as_is() -> None:
    spec = importlib.util.spec_from_file_location("mixed_digits_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module._mean_std([0.9, 0.8, 0.7]) == "80.0 ± 10.0%"  # sample std (ddof 1) of 90, 80, 70
    assert module._mean_std([0.9637]) == "96.37%"
    assert module._mean_std([0.5, None]) == "-"  # an attack a model was not run with
