"""The three MNIST comparisons (examples/mnist_*.py) end to end in --quick mode on stand-in data: rows for every
(seed, method), mean ± std, paired Holm tests, figures, resuming from the JSON, and like-for-like configs."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def stand_in_mnist(root: str = "data") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """MNIST-shaped learnable data: class c lights a 6x6 square at a class-specific place, plus noise."""
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 10
        x = 0.2 * torch.rand(n, 1, 28, 28, generator=g)
        for c in range(10):
            row, col = 2 + 8 * (c // 4), 2 + 6 * (c % 4)
            x[y == c, :, row : row + 6, col : col + 6] += 0.7
        return x.clamp(0, 1), y

    return {"train": make(400), "val": make(200), "test": make(120)}


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    loaded = {name: load(name) for name in ("mnist_calibration", "mnist_reweighting", "mnist_smoothing")}
    for module in loaded.values():
        monkeypatch.setattr(module, "mnist_splits", stand_in_mnist)
    return loaded


def test_calibration_quick_resumes_and_tests_against_standard(
    examples: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = examples["mnist_calibration"]
    args = ["--quick", "--json", str(tmp_path / "cal.json"), "--figures", str(tmp_path / "fig")]
    result = example.main(args)
    runs, summary = result["runs"], result["summary"]
    assert sorted(runs) == [0, 1]
    for rows in runs.values():
        assert set(rows) == set(example.METHODS)
        for row in rows.values():
            for part in ("in_distribution", "under_shift"):
                assert 0 <= row[part]["acc"] <= 1 and 0 <= row[part]["ece"] <= 1 and row[part]["nll"] >= 0
            assert set(row["conditions"]) == {"clean"} | {f"{s}_s3" for s in example.SHIFT_NAMES}
        ts, standard = rows["Temperature scaling"], rows["Standard"]
        assert ts["temperature"] > 0 and ts["in_distribution"]["acc"] == standard["in_distribution"]["acc"]
    assert summary["tests"]["Standard"]["under_shift"]["ece"].keys() == {
        "Label smoothing",
        "Temperature scaling",
        "AR-AdaLS",
    }
    ece = summary["methods"]["AR-AdaLS"]["in_distribution"]["ece"]
    assert ece["values"] == [runs[k]["AR-AdaLS"]["in_distribution"]["ece"] for k in (0, 1)]
    assert (tmp_path / "fig" / "reliability.png").stat().st_size > 0
    assert (tmp_path / "fig" / "ece_vs_severity.png").stat().st_size > 0
    out = capsys.readouterr()
    assert "config diff Standard -> Label smoothing" in out.out and "claim 'AR-AdaLS has a lower ECE" in out.out
    again = example.main(args)  # resumes: every run reused, same numbers
    assert "reused" in capsys.readouterr().err
    assert again["runs"][1]["AR-AdaLS"]["under_shift"] == runs[1]["AR-AdaLS"]["under_shift"]
    assert json.loads((tmp_path / "cal.json").read_text())["complete"] is True


def test_calibration_methods_differ_only_in_the_method(examples: dict[str, ModuleType]) -> None:
    example = examples["mnist_calibration"]
    s = example.quick_settings()
    standard = example.build("Standard", s, 0)
    assert example.config_diff(standard, example.build("Label smoothing", s, 0)) == {
        "class": ("Standard", "LabelSmoothing"),
        "smoothing": (None, "0.1"),
    }
    assert example.config_diff(standard, example.build("Standard", s, 1))["initial weights"] == ("seeded", "different")


def test_reweighting_quick_and_like_for_like(
    examples: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = examples["mnist_reweighting"]
    s = example.quick_settings()
    base = example.build("FGSM-RS", s, 0, 4)
    for name in example.REWEIGHTED:
        assert set(example.config_diff(base, example.build(name, s, 0, 4))) == {"weighting"}
    fgsm = example.Settings(**{**vars(s), "base": "fgsm_rs"})
    tm = example.build("FGSM-RS", fgsm, 0, 4).threat_model
    assert tm.steps == 1 and tm.step_size == pytest.approx(1.25 * fgsm.eps) and tm.random_start == "uniform"
    result = example.main(["--quick", "--json", str(tmp_path / "rw.json"), "--out", str(tmp_path / "rw")])
    runs, summary = result["runs"], result["summary"]
    for seed, rows in runs.items():
        assert set(rows) == {"FGSM-RS", *example.REWEIGHTED} | ({"Standard"} if seed == 0 else set())
        for row in rows.values():
            assert row["pgd_acc"] <= row["clean_acc"] + 1e-9
            assert row["worst_case_acc"] <= min(row["aa_acc"], row["subset_pgd_acc"], row["subset_clean_acc"]) + 1e-9
            assert row["pgd_worst30"] <= row["pgd_acc"] + 1e-9 and len(row["pgd_per_class"]) == 10
    assert set(summary["tests"]["FGSM-RS"]["pgd_acc"]) == set(example.REWEIGHTED)
    assert summary["standard"]["pgd_acc"] <= summary["standard"]["clean_acc"]
    assert "config diff FGSM-RS -> DRO (DONE)" in capsys.readouterr().out
    assert sorted((tmp_path / "rw" / "models").glob("*.pt"))  # weights kept for resuming


def test_reweighting_refuses_an_attack_that_does_not_break_an_undefended_model(
    examples: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = examples["mnist_reweighting"]
    s = example.quick_settings()
    s.require_broken_standard = True
    monkeypatch.setattr(example, "method_names", lambda settings: [])
    monkeypatch.setattr(example, "CHECK_EPS", 1e-6)  # attacks at eps 1e-6 cannot break anything
    store = example.RunStore(None, {})
    with pytest.raises(RuntimeError, match="too weak"):
        example.run_seed(s, 0, store, "data", tmp_path)


def test_smoothing_quick_and_indexed_training_sigma(
    examples: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = examples["mnist_smoothing"]
    s = example.quick_settings()
    train_x = stand_in_mnist()["train"][0]
    model = example.build("sigma(x) 0.25", s, 0, train_x, tmp_path / "cache")
    exact = model.sigma_fn(train_x[:8])
    assert torch.allclose(model.train_sigma[:8], exact, rtol=1e-4)  # the table is sigma(x) of the training images
    model.train()
    model._index = torch.tensor([3, 5])
    assert torch.equal(model.sigma_of(train_x[:2]), model.train_sigma[[3, 5]])  # training looks up by index
    model.eval()
    assert torch.allclose(model.sigma_of(train_x[3:4]), exact[3:4])  # evaluation computes sigma(x)
    constant = example.build("sigma 0.25", s, 0, train_x, tmp_path / "cache")
    assert all(torch.equal(p, q) for p, q in zip(constant.parameters(), model.parameters(), strict=True))
    args = ["--quick", "--json", str(tmp_path / "sm.json"), "--out", str(tmp_path / "sm")]
    partial = example.main([*args, "--seed-list", "1"])  # one process per seed can share the JSON
    assert partial["summary"] is None and "seeds finished: [1] of [0, 1]" in capsys.readouterr().err
    result = example.main(args)  # runs seed 0, reuses seed 1
    out = capsys.readouterr()
    assert "seed 1 sigma 0.25: reused" in out.err and "curse of dimensionality" in out.out
    runs, summary = result["runs"], result["summary"]
    for rows in runs.values():
        assert set(rows) == set(example.METHODS)
        for row in rows.values():
            acc = row["certified_acc"]
            assert all(a >= b for a, b in zip(acc, acc[1:], strict=False)) and 0 <= row["abstain"] <= 1
            assert row["num_certified"] == s.num_certify
    assert {"sigma(x) 0.25", "sigma(x) 0.50"} == set(summary["tests"])
    assert not math.isnan(summary["methods"]["sigma 0.25"]["acr"]["mean"])
    assert (tmp_path / "sm" / "certified_accuracy.png").is_file()
