from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

import pytest  # noqa: E402
from fault_runs import BATCHES, EPOCHS, fit_config, run  # noqa: E402


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the shrunk digits TRADES run, never interrupted (its folder)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    result = run(["fit", "--config", str(fit_config(tmp, EPOCHS, BATCHES))], tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp
