"""The installed ``robustlit`` console script exits 0 on success and non-zero on failure.

These run the real console script in a subprocess (as make, a scheduler or CI would), not ``main()``
in-process: an earlier version returned the CLI object to ``sys.exit`` and so exited 1 after every
successful run, which no in-process test could see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import CONFIGS, load, shrink, write

CONSOLE_SCRIPT = Path(sys.executable).parent / "robustlit"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"the console script is not installed next to {sys.executable}: run `make install`")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def small_trades_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("exit-status")
    return write(shrink(load(CONFIGS / "digits" / "trades.yaml"), tmp), tmp / "trades.yaml")


def test_successful_fit_and_test_exit_zero(small_trades_config: Path) -> None:
    fitted = _run(["fit", "--config", str(small_trades_config)], small_trades_config.parent)
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    best = next(small_trades_config.parent.glob("runs/cli/version_*/checkpoints/best.ckpt"))
    tested = _run(["test", "--config", str(small_trades_config), "--ckpt_path", str(best)], best.parent)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "test: adversarial evaluation" in tested.stdout  # robustlit's table (Lightning's is off by default)


def test_bad_config_value_exits_two(small_trades_config: Path) -> None:
    result = _run(["fit", "--config", str(small_trades_config), "--model.init_args.steps", "0"], Path.cwd())
    assert result.returncode == 2
    assert "error: model.init_args.steps: " in result.stderr


def test_missing_checkpoint_exits_non_zero(small_trades_config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.ckpt"
    result = _run(["test", "--config", str(small_trades_config), "--ckpt_path", str(missing)], tmp_path)
    assert result.returncode != 0
    assert "no-such.ckpt" in result.stderr


def test_failed_run_exits_non_zero(small_trades_config: Path, tmp_path: Path) -> None:
    # SGD with a learning rate of 1e30 blows the weights up after one step: the NaN-loss guard stops the run.
    args = [
        "fit",
        "--config",
        str(small_trades_config),
        "--model.init_args.optimizer",
        "torch.optim.SGD",
        "--model.init_args.optimizer.lr",
        "1e30",
    ]
    result = _run(args, tmp_path)
    assert result.returncode != 0
    assert "training loss is" in result.stderr
