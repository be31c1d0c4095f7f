"""Paired, Holm-corrected tests over seeds and the resumable run store of the multi-seed comparisons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from robustlit.experiments import RunStore, mean_std, paired_tests
from robustlit.experiments.paired import paired_difference, verdict


def test_paired_tests_match_scipy_and_holm_by_hand() -> None:
    values = {"ref": [0.50, 0.51, 0.52], "A": [0.60, 0.622, 0.644], "B": [0.70, 0.31, 0.72], "C": [0.55, 0.56, 0.57]}
    rows = paired_tests(values, "ref")
    assert set(rows) == {"A", "B", "C"}
    p_a = stats.ttest_rel(values["A"], values["ref"]).pvalue
    p_b = stats.ttest_rel(values["B"], values["ref"]).pvalue
    assert rows["A"]["p"] == pytest.approx(p_a) and rows["B"]["p"] == pytest.approx(p_b)
    _, holm, _, _ = multipletests([p_a, p_b], method="holm")
    assert rows["A"]["p_holm"] == pytest.approx(holm[0]) and rows["B"]["p_holm"] == pytest.approx(holm[1])
    assert rows["A"]["significant"] and not rows["B"]["significant"]
    # C - ref = +0.05 on every seed: no variance estimate, not tested, never significant
    assert math.isnan(rows["C"]["p"]) and not rows["C"]["significant"]
    d = [a - r for a, r in zip(values["A"], values["ref"], strict=True)]
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / math.sqrt(3)
    assert rows["A"]["ci95"] == pytest.approx([sum(d) / 3 - half, sum(d) / 3 + half])
    assert verdict(rows["A"], higher_is_better=True) == "confirmed"
    assert verdict(rows["A"], higher_is_better=False) == "reversed"
    assert verdict(rows["B"], higher_is_better=True) == "not confirmed"


def test_mean_std_and_refusals() -> None:
    stat = mean_std([1.0, 2.0, 4.0])
    assert stat["mean"] == pytest.approx(7 / 3) and stat["std"] == pytest.approx(stats.tstd([1, 2, 4]))
    assert math.isnan(mean_std([1.0])["std"])
    with pytest.raises(ValueError, match="reference"):
        paired_tests({"a": [1, 2]}, "b")
    with pytest.raises(ValueError, match="paired"):
        paired_difference([1.0, 2.0], [1.0])


def test_store_resumes_same_settings_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "runs.json"
    store = RunStore(path, {"epochs": 3})
    store.put(0, "Standard", {"acc": 0.9})
    store.put(1, "Standard", {"acc": 0.8})
    again = RunStore(path, {"epochs": 3})
    assert again.get(0, "Standard") == {"acc": 0.9} and again.get(1, "Standard") == {"acc": 0.8}
    assert again.get(2, "Standard") is None
    other = RunStore(path, {"epochs": 4})
    assert other.get(0, "Standard") is None and "other settings" in capsys.readouterr().err
    path.write_text("{not json")
    assert RunStore(path, {"epochs": 3}).get(0, "Standard") is None
    assert "unreadable" in capsys.readouterr().err
    fresh = RunStore(path, {"epochs": 3})
    fresh.put(0, "LS", {"acc": 0.5})
    assert json.loads(path.read_text())["runs"] == {"0": {"LS": {"acc": 0.5}}}
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_two_stores_on_one_file_keep_each_others_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    first, second = RunStore(path, {"epochs": 3}), RunStore(path, {"epochs": 3})
    first.put(0, "A", {"acc": 0.1})
    second.put(1, "A", {"acc": 0.2})  # merges the file first: seed 0 is kept
    first.put(0, "B", {"acc": 0.3})
    stored = json.loads(path.read_text())["runs"]
    assert stored == {"0": {"A": {"acc": 0.1}, "B": {"acc": 0.3}}, "1": {"A": {"acc": 0.2}}}
    second.refresh()
    assert second.get(0, "B") == {"acc": 0.3}
