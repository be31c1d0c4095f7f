"""Results in the field's formats: a RobustBench model-info file and a markdown leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from interop_helpers import PGD, PGD_METRIC, REPO, CheckpointEvaluation, TrainedRun, eval_fragment

from robustlit.cli import main
from robustlit.results import ROBUSTBENCH_KEYS, format_eps, leaderboard_markdown, robustbench_model_info
from robustlit.results.robustbench_format import percent

AUTOATTACK = {"name": "autoattack", "norm": "Linf", "eps": 0.2}
AUTOATTACK_METRIC = "autoattack_linf_0.2"

# Fields RobustBench's own code reads from a model_info/<dataset>/<threat_model>/<model>.json file
# (RobustBench/robustbench, robustbench/utils.py and robustbench/leaderboard/):
#   utils.list_available_models: name, link, venue, clean_acc, autoattack_acc (ACC_FIELDS of Linf/L2:
#     "external" if present, else "autoattack_acc"), architecture
#   utils.get_leaderboard_bibtex: name, authors, venue
#   utils.get_leaderboard_latex: clean_acc, autoattack_acc, additional_data, architecture, venue
#   leaderboard/template.py generate_leaderboard (+ leaderboard.html.j2): link, name, footnote, clean_acc,
#     autoattack_acc, additional_data, architecture, venue
#   utils.ModelInfo (what utils.update_json writes): link, name, authors, additional_data,
#     number_forward_passes, dataset, venue, architecture, eps, clean_acc, reported, autoattack_acc, footnote
LOADER_FIELDS = {
    "link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue", "architecture",
    "eps", "clean_acc", "reported", "autoattack_acc", "footnote",
}  # fmt: skip
TITLE = "Standard training on the 8x8 digits"


@pytest.fixture(scope="module")
def autoattack_run(trained_run: TrainedRun) -> Path:
    """`robustlit test` with standard AutoAttack (pyautoattack) and PGD on 32 test examples."""
    fragment = eval_fragment(trained_run.root, "autoattack", attacks=[PGD, AUTOATTACK], num_examples=32)
    cli = main(
        ["test", "--config", str(trained_run.config), "--config", str(fragment), "--ckpt_path", str(trained_run.ckpt)]
    )
    return Path(cli.trainer.log_dir)


def test_eps_and_accuracies_are_written_as_robustbench_writes_them() -> None:
    assert format_eps(8 / 255, "Linf") == "8/255" and format_eps(4 / 255, "Linf") == "4/255"
    assert format_eps(0.031, "Linf") == "0.031"  # not a multiple of 1/255: as Zhang2019Theoretically.json
    assert format_eps(0.5, "L2") == "0.5" and format_eps(0.2, "Linf") == "0.2"  # not "51/255"
    assert format_eps(0.03137, "Linf") == "0.03137"  # close to, but not, 8/255
    assert format_eps(8 / 255, "Linf", "8/255") == "8/255" and format_eps(0.5, "L2", "1/2") == "1/2"  # as written
    assert percent(0.53084) == "53.08" and percent(1.0) == "100.00" and percent(0.25) == "25.00"


def test_robustbench_file_has_every_field_the_loader_reads(autoattack_run: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out_dir = tmp_path / "model_info" / "digits" / "Linf"
    command = [sys.executable, "-m", "robustlit.results", "robustbench", str(autoattack_run), "--out-dir", str(out_dir)]
    done = subprocess.run(
        [*command, "--model-id", "Standard2026Digits", "--name", TITLE, "--footnote", "8x8 digits"], env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = out_dir / "Standard2026Digits.json"
    info = json.loads(out.read_text())
    assert LOADER_FIELDS <= info.keys() <= set(ROBUSTBENCH_KEYS)
    assert "counts 32 examples" in done.stderr  # fewer than the 270 test digits: said
    provenance = json.loads((out_dir / "Standard2026Digits.robustlit.json").read_text())
    summary = json.loads((autoattack_run / "adversarial_evaluation_test.json").read_text())
    assert info["autoattack_acc"] == percent(summary["attacks"][AUTOATTACK_METRIC]["robust_acc"])
    assert info["clean_acc"] == percent(summary["clean_acc"])
    assert (info["eps"], provenance["threat_model"], provenance["n_examples"], info["dataset"]) == (
        "0.2",
        "Linf",
        32,
        "digits",
    )
    assert info["architecture"] == "SmallCNN" and info["name"] == TITLE and info["reported"] == ""
    assert {"torch", "pyautoattack", "robustlit"} <= provenance["versions"].keys()
    # what list_available_models / get_leaderboard_latex do with the values must work
    assert 0 <= float(info["autoattack_acc"]) <= float(info["clean_acc"]) <= 100
    assert float(info["clean_acc"]) > 80 and float(info["autoattack_acc"]) < 20  # AA breaks the undefended model
    assert isinstance(info["additional_data"], bool) and isinstance(info["venue"], str)
    assert isinstance(info["authors"].replace(", ", " and "), str)


def test_robustbench_needs_an_autoattack_result(checkpoint_evaluation: CheckpointEvaluation) -> None:
    with pytest.raises(ValueError, match="AutoAttack"):
        robustbench_model_info(checkpoint_evaluation.log_dir)


def test_leaderboard_gathers_runs(checkpoint_evaluation: CheckpointEvaluation, autoattack_run: Path) -> None:
    table = leaderboard_markdown([checkpoint_evaluation.log_dir, autoattack_run])
    # 200 and 32 examples: two tables, never one ranking
    by_title = {s.splitlines()[0]: s for s in table.split("## ")[1:]}
    assert sorted(by_title) == ["digits, Linf eps 0.2, 200 examples", "digits, Linf eps 0.2, 32 examples"]
    sections = [by_title["digits, Linf eps 0.2, 200 examples"], by_title["digits, Linf eps 0.2, 32 examples"]]
    tables = [[line for line in s.splitlines() if line.startswith("|")] for s in sections]
    headers = [[cell.strip() for cell in t[0].strip("|").split("|")] for t in tables]
    rows = [[cell.strip() for cell in t[2].strip("|").split("|")] for t in tables]
    assert headers[0][-2:] == [PGD_METRIC, "ensemble"] and AUTOATTACK_METRIC not in headers[0]
    assert headers[1][-3:] == [AUTOATTACK_METRIC, PGD_METRIC, "ensemble"]
    expected = 100 * checkpoint_evaluation.results["pgd"]
    assert rows[0][headers[0].index(PGD_METRIC)] == f"{expected:.2f}"
    assert all(row[2] == "Standard" and row[3] == "SmallCNN" for row in rows)


def test_leaderboard_command(checkpoint_evaluation: CheckpointEvaluation, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "board.md"
    command = [sys.executable, "-m", "robustlit.results", "leaderboard", str(checkpoint_evaluation.log_dir)]
    done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text() == done.stdout and PGD_METRIC in done.stdout
    missing = subprocess.run([*command[:-1], str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "adversarial_evaluation_test.json" in missing.stderr


def test_architecture_labels() -> None:
    from robustlit.results.labels import architecture_label

    def pretrained(source: dict) -> dict:
        return {"model": {"init_args": {"source": source}}}

    wrn = {"class_path": "robustlit.models.WideResNet", "init_args": {"depth": 28, "widen_factor": 10}}
    assert architecture_label({"model": {"init_args": {"backbone": wrn}}}) == "WideResNet-28-10"
    assert (
        architecture_label(pretrained({"kind": "robustbench", "name": "Carmon2019Unlabeled"})) == "Carmon2019Unlabeled"
    )
    assert architecture_label(pretrained({"kind": "module", "class_path": "a.b.Net"})) == "Net"
    # a stale class_path left over from an earlier config does not name a TorchScript model
    ts = {"kind": "torchscript", "path": "/x/model.ts", "class_path": "a.b.Net"}
    assert architecture_label(pretrained(ts)) == "model.ts (torchscript)"
