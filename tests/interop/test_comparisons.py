"""Comparisons that cannot mislead (issue 20): every case here gave a wrong or misleading result without a word
before (checked against the code of commit b23ce05), and each test fails there.

Run folders are written by the test in the layout ``robustlit test`` leaves (``adversarial_evaluation_test.json``
and ``config.yaml``), so these checks take milliseconds; the end-to-end path is in test_results.py and
test_evaluate_recipe.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from robustlit.export import model_card
from robustlit.results import leaderboard_markdown, robustbench_model_info

CONFIG = {
    "model": {
        "class_path": "robustlit.methods.TRADES",
        "init_args": {"backbone": {"class_path": "robustlit.models.SmallCNN", "init_args": {"width": 32}}},
    },
    "data": {"class_path": "robustlit.data.DigitsDataModule", "init_args": {}},
}


def _attack(name: str, norm: str, eps: float, robust: float, unreliable: bool | None = None) -> dict:
    result = {"spec": {"name": name, "norm": norm, "eps": eps, "steps": 50, "restarts": 1}, "robust_acc": robust}
    if unreliable is not None:
        result["unreliable"] = unreliable
    return result


def write_run(folder: Path, attacks: dict[str, dict], clean: float = 0.9, n: int = 270) -> Path:
    """A run folder as `robustlit test` leaves it (the fields the results package reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    worst = min(a["robust_acc"] for a in attacks.values())
    summary = {
        "num_examples": n,
        "dataset_size": 270,
        "clean_acc": clean,
        "attacks": {**attacks, "ensemble": {"spec": {"name": "ensemble"}, "robust_acc": worst}},
    }
    (folder / "adversarial_evaluation_test.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return folder


def _tables(markdown: str) -> list[list[str]]:
    """The markdown tables of a leaderboard, each as its lines."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_runs_at_different_threat_models_get_separate_tables(tmp_path: Path) -> None:
    # before: one table, the eps 0.1 run ranked above the eps 0.2 run as if they were comparable
    small = write_run(tmp_path / "runs" / "eps01" / "version_0", {"pgd50_linf_0.1": _attack("pgd", "Linf", 0.1, 0.8)})
    large = write_run(tmp_path / "runs" / "eps02" / "version_0", {"pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, 0.6)})
    tables = _tables(leaderboard_markdown([large, small]))
    assert len(tables) == 2
    assert "## digits, Linf eps 0.1, 270 examples" in leaderboard_markdown([large, small])
    assert all(len(table) == 3 for table in tables)  # header, rule, one run each


def test_different_example_counts_are_not_ranked_together(tmp_path: Path) -> None:
    few = write_run(tmp_path / "few" / "version_0", {"pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, 0.9)}, n=32)
    many = write_run(tmp_path / "many" / "version_0", {"pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, 0.6)})
    assert len(_tables(leaderboard_markdown([few, many]))) == 2


def test_three_different_runs_get_three_labels(tmp_path: Path) -> None:
    # before: all three were labelled digits-pretrained/version_0
    folder = Path("runs") / "digits-pretrained" / "version_0"
    attacks = [{"pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, r)} for r in (0.5, 0.6, 0.7)]
    runs = [write_run(tmp_path / where / folder, a) for where, a in zip("abc", attacks, strict=True)]
    rows = [line for line in _tables(leaderboard_markdown(runs))[0][2:]]
    labels = [row.split("|")[2].strip() for row in rows]
    assert len(set(labels)) == 3, labels
    assert {label.split("/")[0] for label in labels} == {"a", "b", "c"}


def test_unreliable_is_kept_in_the_leaderboard(tmp_path: Path) -> None:
    attacks = {
        "autoattack_linf_0.2": _attack("autoattack", "Linf", 0.2, 0.6259),
        "pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, 0.6889, unreliable=True),
    }
    board = leaderboard_markdown([write_run(tmp_path / "run" / "version_0", attacks)])
    assert "68.89 UNRELIABLE" in board and "62.59 UNRELIABLE" not in board


def test_unreliable_is_kept_in_the_model_card() -> None:
    attacks = {
        "autoattack_linf_0.2": _attack("autoattack", "Linf", 0.2, 0.6259),
        "pgd50_linf_0.2": _attack("pgd", "Linf", 0.2, 0.6889, unreliable=True),
    }
    card = {
        "architecture": {"class_path": "robustlit.models.SmallCNN", "init_args": {}},
        "normalization": {"mean": [0.3], "std": [0.38]},
        "bounds": [0, 1],
        "num_classes": 10,
        "training": {"method": "robustlit.methods.TRADES", "hyperparameters": {}},
        "evaluation": {"adversarial_evaluation_test": {"num_examples": 270, "clean_acc": 0.9778, "attacks": attacks}},
    }
    readme = model_card(card, "digits-trades")
    assert "| pgd50_linf_0.2 | 68.89% UNRELIABLE |" in readme
    assert "| autoattack_linf_0.2 | 62.59% |" in readme


def test_robustbench_file_follows_robustbench_conventions(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "runs" / "digits-trades" / "version_0",
        {"autoattack_linf_0.2": _attack("autoattack", "Linf", 0.2, 0.25)},
    )
    title = "Theoretically Principled Trade-off between Robustness and Accuracy"
    info = robustbench_model_info(run, name=title)
    assert (info["clean_acc"], info["autoattack_acc"]) == ("90.00", "25.00")  # before: "90.0", "25.0"
    assert info["name"] == title  # the paper's title (before: the run's name in `name`)
    assert info["reported"] == ""  # the paper's own number: not defaulted to ours (before: "25.0")
    assert info["eps"] == "0.2" and info["dataset"] == "digits" and info["architecture"] == "SmallCNN"


def test_robustbench_file_is_named_by_the_model_id_and_warns_below_the_protocol(tmp_path: Path) -> None:
    from robustlit.results import TooFewExamplesWarning, write_robustbench_model_info

    run = write_run(
        tmp_path / "run" / "version_0", {"autoattack_linf_0.2": _attack("autoattack", "Linf", 0.2, 0.25)}, n=32
    )
    with pytest.warns(TooFewExamplesWarning, match="counts 32 examples.*first 270 test examples"):
        path = write_robustbench_model_info(run, tmp_path / "model_info", model_id="Zhang2019Theoretically")
    assert path == tmp_path / "model_info" / "Zhang2019Theoretically.json"
    provenance = json.loads((path.parent / "Zhang2019Theoretically.robustlit.json").read_text())
    assert provenance["n_examples"] == 32 and "counts 32 examples" in provenance["warning"]
    full = write_run(tmp_path / "full" / "version_0", {"autoattack_linf_0.2": _attack("autoattack", "Linf", 0.2, 0.25)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TooFewExamplesWarning)  # the whole test split: no warning
        write_robustbench_model_info(full, tmp_path / "model_info", model_id="Full2026Digits")
