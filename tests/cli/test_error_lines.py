"""Bad input is one line, ``error: <field>: <reason>``, with exit status 2 and "did you mean" for names; the whole
message and traceback are one flag away (``--traceback``). Before (commit b23ce05) a missing weights file gave 78
lines of chained traceback and exit 1, and a mistyped attack name a 52-line usage dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from harness import CONFIGS, REPO, load, write

from robustlit.cli import console_main
from robustlit.models import SmallCNN

CONSOLE_SCRIPT = Path(sys.executable).parent / "robustlit"
PRETRAINED = REPO / "configs" / "eval" / "pretrained_digits.yaml"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_missing_weights_file_is_one_line_and_exit_two(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.safetensors"
    args = ["test", "--config", str(PRETRAINED), "--model.init_args.source.path", str(missing)]
    done = _run([*args, "--model.init_args.normalization", "data"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert _error_lines(done.stderr) == [f"error: model.init_args.source.path: no weights file at {missing}"]
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 3, done.stderr
    full = _run([*args, "--model.init_args.normalization", "data", "--traceback"], tmp_path)
    assert full.returncode != 0 and "Traceback" in full.stderr and "no weights file" in full.stderr


def test_mistyped_attack_name_is_one_line_with_did_you_mean(tmp_path: Path) -> None:
    config = load(CONFIGS / "digits" / "trades.yaml")
    config["trainer"]["callbacks"][1]["init_args"]["attacks"][0]["name"] = "autoatack"
    done = _run(["fit", "--config", str(write(config, tmp_path / "typo.yaml"))], tmp_path)
    assert done.returncode == 2
    (line,) = _error_lines(done.stderr)
    assert line.startswith("error: trainer.callbacks[AdversarialEvaluation].attacks.name: unknown attack 'autoatack'")
    assert "(did you mean 'autoattack'?)" in line
    assert "usage:" not in done.stderr and len(done.stderr.splitlines()) <= 3, done.stderr


@pytest.mark.parametrize(
    ("override", "field", "expected"),
    [
        (["--model.init_args.steps", "0"], "model.init_args.steps", "v>0"),
        (["--model", "robustlit.methods.TRADEs"], "model", "did you mean 'TRADES'?"),
        (
            ["--model.init_args.backbone.class_path", "robustlit.models.SmallCN"],
            "model.init_args.backbone",
            "'SmallCNN'",
        ),
        (["--model.init_args.betta", "3"], "model", "unknown option 'betta' (did you mean 'beta'?)"),
        (["--data", "robustlit.data.DigitDataModule"], "data", "did you mean 'DigitsDataModule'?"),
        (["--model.init_args.eps", "8/0"], "model.init_args.eps", "fraction such as 8/255"),
    ],
)
def test_config_mistakes_name_the_field(
    override: list[str], field: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        console_main(["fit", "--config", str(CONFIGS / "digits" / "trades.yaml"), *override, "--print_config"])
    assert refused.value.code == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {field}: ") and expected in line, line


def test_evaluate_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted = tmp_path / "model.ts"
    torch.jit.script(SmallCNN(num_classes=10, in_channels=1, width=4)).save(str(scripted))
    cases = [
        (["--eps", "8/0"], "error: --eps: eps must be a number or a fraction such as 8/255"),
        (["--eps", "8"], "error: --eps: 8 is outside the Linf range [0, 1] (pixel units; 8/255, not 8)"),
        ([], "error: --normalization: model.ts does not say how it expects its inputs"),
        (
            ["--normalization", "inside", "--data", "digit"],
            "error: --data: unknown data 'digit' (did you mean 'digits'?)",
        ),
        (["--normalization", "inside", "--attacks", "pgdd"], "error: --attacks: "),
        (["--normalization", "inside", "--threat-model", "L2", "--eps", "9"], "outside the L2 range [0, 8]"),
    ]
    for extra, expected in cases:
        code = console_main(["evaluate", "--model", str(scripted), "--out", str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        (line,) = _error_lines(err)
        assert expected in line, (extra, line)
