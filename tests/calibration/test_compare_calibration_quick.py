"""The calibration comparison experiment (examples/compare_calibration.py) end to end in --quick mode."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy import stats

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare_calibration.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_calibration", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_mean_std_and_paired_tests_over_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example()
    result = example.main(["--quick", "--json", str(tmp_path / "rows.json")])
    names, skipped = example.available(list(example.METHODS))
    assert set(names) | set(skipped) == set(example.METHODS) and set(skipped) <= set(example.OPTIONAL)
    runs, summary = result["runs"], result["summary"]
    assert sorted(runs) == [0, 1] and summary["seeds"] == [0, 1]  # --quick: two seeds
    for seed in runs:
        assert list(runs[seed]) == names
        for row in runs[seed].values():
            for part in ("in_distribution", "under_shift"):
                metrics = row[part]
                keys = ("clean_acc", "robust_acc", "worst30_robust_acc", "ece")
                assert all(0.0 <= metrics[key] <= 1.0 for key in keys)
                assert metrics["robust_acc"] <= metrics["clean_acc"] + 1e-6
                assert metrics["worst30_robust_acc"] <= metrics["robust_acc"] + 1e-6
    # mean and std are those of the per-seed values; differences are paired on the seed
    clean = summary["methods"]["TRADES"]["in_distribution"]["clean_acc"]
    values = [runs[k]["TRADES"]["in_distribution"]["clean_acc"] for k in (0, 1)]
    assert clean["values"] == values and clean["mean"] == pytest.approx(sum(values) / 2)
    assert clean["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    diff = summary["differences"]["in_distribution"]["clean_acc"]["TRADES"]
    reference = [runs[k]["PGD-AT"]["in_distribution"]["clean_acc"] for k in (0, 1)]
    assert diff["mean"] == pytest.approx(sum(values) / 2 - sum(reference) / 2)
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    assert (math.isnan(diff["p"]) and not diff["significant"]) or 0.0 <= diff["p"] <= diff["p_holm"] <= 1.0
    assert "PGD-AT" not in summary["differences"]["in_distribution"]["ece"]
    table = capsys.readouterr().out
    for name in names:
        assert name in table
    assert "PGD-3 Linf eps=0.1" in table and "shift: ECE" in table and "±" in table
    assert "differences to PGD-AT" in table and "Holm" in table and "Significant at 0.05" in table
    for name in skipped:
        assert f"{name}: skipped" in table
    written = json.loads((tmp_path / "rows.json").read_text())
    assert written["settings"]["epochs"] == 2 and written["settings"]["seeds"] == [0, 1]


def test_paired_statistics_on_known_numbers() -> None:
    """Three seeds, hand-checkable: a consistent +10 pt difference is significant, a noisy one is not, and a
    difference identical on every seed is not tested (no variance estimate)."""
    example = load_example()
    s = example.Settings(seeds=[0, 1, 2])

    def row(acc: float) -> dict:
        metrics = {"clean_acc": acc, "robust_acc": acc / 2, "worst30_robust_acc": acc / 4, "ece": 0.1}
        return {"in_distribution": metrics, "under_shift": metrics}

    runs = {
        k: {"PGD-AT": row(0.5 + 0.01 * k), "A": row(0.6 + 0.012 * k), "B": row(0.5 + 0.2 * (-1) ** k)} for k in range(3)
    }
    summary = example.paired_statistics(runs, s)
    clean = summary["differences"]["in_distribution"]["clean_acc"]
    d = [0.1, 0.102, 0.104]
    assert clean["A"]["mean"] == pytest.approx(sum(d) / 3)
    assert clean["A"]["p"] == pytest.approx(stats.ttest_rel([0.6, 0.612, 0.624], [0.5, 0.51, 0.52]).pvalue)
    assert clean["A"]["significant"] and not clean["B"]["significant"]
    half = stats.t.ppf(0.975, 2) * np.std(d, ddof=1) / 3**0.5
    assert clean["A"]["ci95"] == pytest.approx([sum(d) / 3 - half, sum(d) / 3 + half])
    ece = summary["differences"]["in_distribution"]["ece"]["A"]
    assert math.isnan(ece["p"]) and not ece["significant"]  # identical on every seed
    assert summary["methods"]["A"]["in_distribution"]["clean_acc"]["std"] == pytest.approx(
        np.std([0.6, 0.612, 0.624], ddof=1)
    )


def test_seeds_flag_and_autoattack_flag_are_parsed() -> None:
    example = load_example()
    settings, _ = example.parse(["--seeds", "5", "--autoattack"])
    assert settings.seeds == [0, 1, 2, 3, 4] and settings.autoattack and settings.eval_steps == 50
    default, _ = example.parse([])
    assert default.seeds == [0, 1, 2] and not default.autoattack
    assert [key for key, _, _ in example.metrics_of(settings)][:3] == ["clean_acc", "robust_acc", "autoattack_acc"]


def test_autoattack_runs_on_the_clean_test_set_only_and_an_interrupted_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example()
    path = tmp_path / "table.json"
    argv = ["--quick", "--seeds", "1", "--methods", "Standard", "PGD-AT", "--autoattack", "--json", str(path)]
    trained: list[str] = []
    original_train = example.train

    def train_or_stop(module, s, seed):  # noqa: ANN001, ANN202
        if len(trained) == stop_after:
            raise KeyboardInterrupt
        trained.append(type(module).__name__)
        return original_train(module, s, seed)

    monkeypatch.setattr(example, "train", train_or_stop)
    stop_after = 1
    with pytest.raises(KeyboardInterrupt):
        example.main(argv)
    partial = json.loads(path.read_text())
    assert not partial["complete"] and list(partial["runs"]["0"]) == ["Standard"]

    trained.clear()
    stop_after = -1
    result = example.main(argv)
    assert trained == ["PGDAT"]  # Standard was reused, not retrained
    assert result["runs"][0]["Standard"] == partial["runs"]["0"]["Standard"]
    for row in result["runs"][0].values():
        assert 0.0 <= row["in_distribution"]["autoattack_acc"] <= row["in_distribution"]["robust_acc"] + 1e-6
        assert "autoattack_acc" not in row["under_shift"]  # AutoAttack on the clean test set only
    assert json.loads(path.read_text())["complete"]

    trained.clear()
    example.main([*argv[:-2], "--epochs", "1", "--json", str(path)])  # other settings: nothing reused
    assert trained == ["Standard", "PGDAT"]
