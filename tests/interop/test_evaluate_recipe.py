"""The README's "evaluate your model" recipe: one Python call and one command, eps written as ``8/255``, standard
AutoAttack, and a RobustBench model-info file compared field by field with a file in RobustBench's own format.

The model is the interop tests' digits SmallCNN (trained 3 epochs, undefended); the recipe runs on its first
``N`` test digits so that the test stays short (the README's command evaluates the whole split).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from interop_helpers import REPO, TrainedRun

import robustlit
from robustlit.results import ROBUSTBENCH_KEYS

N = 24
TITLE = "Theoretically Principled Trade-off between Robustness and Accuracy"
CONSOLE_SCRIPT = Path(sys.executable).parent / "robustlit"

# A model-info file as RobustBench's repository holds it (model_info/cifar10/Linf/<model ID>.json), written from
# RobustBench's documented schema (robustbench/leaderboard/template.py, generate_leaderboard's docstring, and
# utils.ModelInfo): the keys in this order, accuracies as strings with two decimals, eps as a fraction of 255.
ROBUSTBENCH_REFERENCE = {
    "link": "https://arxiv.org/abs/1901.08573",
    "name": TITLE,
    "authors": "Hongyang Zhang, Yaodong Yu, Jiantao Jiao, Eric P. Xing, Laurent El Ghaoui, Michael I. Jordan",
    "additional_data": False,
    "number_forward_passes": 1,
    "dataset": "cifar10",
    "venue": "ICML 2019",
    "architecture": "WideResNet-34-10",
    "eps": "8/255",
    "clean_acc": "84.92",
    "reported": "56.43",
    "autoattack_acc": "53.08",
}
TWO_DECIMALS = re.compile(r"^\d{1,3}\.\d\d$")


def _readme_block() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### Evaluate your model")
    return text[start : text.index("\n### ", start + 1)]


@pytest.fixture(scope="module")
def python_call(trained_run: TrainedRun) -> robustlit.EvaluationResult:
    """The README's Python call (with this test's checkpoint and N examples)."""
    assert 'robustlit.evaluate("runs/digits-trades/version_0/checkpoints/best.ckpt", "digits", eps="8/255")' in (
        _readme_block()
    )
    return robustlit.evaluate(str(trained_run.ckpt), "digits", eps="8/255", n_examples=N)


def test_python_call_reports_clean_autoattack_and_worst_case(python_call: robustlit.EvaluationResult) -> None:
    result = python_call
    assert (result.threat_model, str(result.eps), result.n_examples, result.dataset) == ("Linf", "8/255", N, "digits")
    assert list(result.robust_acc) == ["autoattack_linf_8/255"]
    assert result.clean_acc > 0.8
    # 8/255 is half a grey level of the 8x8 digits (16 levels): AutoAttack breaks some examples of this
    # undefended model, not most (test_results.py checks that it breaks it at eps 0.2)
    assert result.autoattack_acc is not None and result.autoattack_acc < result.clean_acc
    assert result.worst_case == result.autoattack_acc == result.headline
    assert "autoattack_linf_8/255" in str(result) and "8/255" in result.table()
    spec = result.summary["attacks"]["autoattack_linf_8/255"]["spec"]
    assert spec["eps_text"] == "8/255" and spec["eps"] == 8 / 255


def test_robustbench_file_matches_robustbench_format_field_by_field(
    python_call: robustlit.EvaluationResult, tmp_path: Path
) -> None:
    reference_path = tmp_path / "reference" / "Zhang2019Theoretically.json"
    reference_path.parent.mkdir()
    reference_path.write_text(json.dumps(ROBUSTBENCH_REFERENCE, indent=2))
    reference = json.loads(reference_path.read_text())
    with pytest.warns(UserWarning, match=f"counts {N} examples"):  # below the protocol: said, not hidden
        path = python_call.write_robustbench(
            tmp_path, "Zhang2019Theoretically", name=TITLE, link=reference["link"], authors=reference["authors"]
        )
    assert path.name == reference_path.name  # the file is named by the model ID
    ours = json.loads(path.read_text())
    assert list(ours) == list(reference)  # the same keys in the same order, nothing else
    assert set(ours) <= set(ROBUSTBENCH_KEYS)
    for key, theirs in reference.items():
        assert type(ours[key]) is type(theirs), key
        if key in ("clean_acc", "autoattack_acc"):
            assert TWO_DECIMALS.match(ours[key]) and TWO_DECIMALS.match(theirs), (key, ours[key])
    assert ours["eps"] == "8/255" and ours["name"] == TITLE and ours["reported"] == ""
    assert ours["clean_acc"] == f"{100 * python_call.clean_acc:.2f}"
    assert ours["autoattack_acc"] == f"{100 * python_call.autoattack_acc:.2f}"
    assert (ours["dataset"], ours["architecture"]) == ("digits", "SmallCNN")


def test_one_command_gives_the_same_numbers(
    trained_run: TrainedRun, python_call: robustlit.EvaluationResult, tmp_path: Path
) -> None:
    block = _readme_block()
    command = "robustlit evaluate --model runs/digits-trades/version_0/checkpoints/best.ckpt --data digits --eps 8/255"
    assert command in block
    args = command.split()[1:]
    args[args.index("--model") + 1] = str(trained_run.ckpt)
    args += ["--n-examples", str(N), "--out", str(tmp_path / "out"), "--model-id", "Me2026Digits", "--name", TITLE]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(CONSOLE_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"robustlit evaluate: results in {tmp_path / 'out'}")
    summary = json.loads((tmp_path / "out" / "adversarial_evaluation_test.json").read_text())
    assert summary["clean_acc"] == python_call.clean_acc
    assert summary["attacks"]["autoattack_linf_8/255"]["robust_acc"] == python_call.autoattack_acc
    info = json.loads((tmp_path / "out" / "Me2026Digits.json").read_text())
    assert info["autoattack_acc"] == f"{100 * python_call.autoattack_acc:.2f}" and info["eps"] == "8/255"
    assert f"counts {N} examples" in done.stderr  # the protocol warning reaches the user
    assert (tmp_path / "out" / "per_class_robust_acc_test.png").is_file()
