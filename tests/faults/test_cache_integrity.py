"""Evaluation cache files and certification logs are verified against a SHA-256 written with them: a changed or
truncated file is named, discarded and computed again, never scored (issue 23, case 5; docs/faults.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fault_runs import record
from torch import nn
from torch.utils.data import TensorDataset

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation
from robustlit.callbacks.certification import Certification

CPU = torch.device("cpu")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()


def _data(n: int = 48) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def _evaluation(cache: Path) -> AdversarialEvaluation:
    spec = AttackSpec(name="native_pgd", eps=0.1, steps=10)
    return AdversarialEvaluation([spec], num_examples=None, batch_size=8, cache_dir=str(cache), print_table=False)


def _robust(summary: dict) -> float:
    return summary["attacks"]["native_pgd10_margin_linf_0.1"]["robust_acc"]


def _mark_every_example_robust(path: Path) -> None:
    """Rewrite a cached batch as if the attack had failed everywhere (whatever the file's layout; a stored checksum,
    if any, is kept as it was: bytes changed on disk)."""
    stored = torch.load(path, weights_only=True)
    columns = stored.get("columns", stored)
    columns["robust"] = torch.ones_like(columns["robust"])
    columns["clean"] = torch.ones_like(columns["clean"])
    torch.save(stored, path)


def test_a_changed_cache_file_is_discarded_and_recomputed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    truth = _evaluation(cache).evaluate(_model(), _data(), 10, (0.0, 1.0), CPU)
    files = sorted(cache.rglob("batch*.pt"))
    assert len(files) == 6 and _robust(truth) < 0.1  # an untrained linear model: PGD breaks it
    for path in files[:3]:
        _mark_every_example_robust(path)
    # what reusing the files would report: the changed batches all robust, the others as computed
    columns = [torch.load(p, weights_only=True)["columns"]["robust"] for p in files[3:]]
    claimed = (3 * 8 + sum(int(c.all(dim=1).sum()) for c in columns)) / 48
    capsys.readouterr()
    rerun = _evaluation(cache).evaluate(_model(), _data(), 10, (0.0, 1.0), CPU)
    printed = capsys.readouterr().out
    changed_robust = _robust(rerun)
    record(
        fault="3 of 6 cached batches of an AdversarialEvaluation (native PGD-10) rewritten to say every example was "
        "robust, then the same evaluation rerun",
        happened=f"robust accuracy {100 * changed_robust:.2f}%, equal to the first run's {100 * _robust(truth):.2f}% "
        f"(before: the changed files were reused and the rerun reported {100 * claimed:.2f}%, as AutoAttack once "
        "reported 30.21% against a true 16.67%)",
        handled="every cached batch holds a SHA-256 of its columns (`robustlit/callbacks/batch_cache.py`); a file that "
        "fails it is named, deleted and its batch attacked again",
    )
    assert rerun == truth
    for path in files[:3]:
        assert f"cache file {path} is discarded" in printed
    assert "reused 3 of 6 cached batches" in printed


def test_a_truncated_cache_file_is_named_and_recomputed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    truth = _evaluation(cache).evaluate(_model(), _data(), 10, (0.0, 1.0), CPU)
    path = sorted(cache.rglob("batch*.pt"))[2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    rerun = _evaluation(cache).evaluate(_model(), _data(), 10, (0.0, 1.0), CPU)
    printed = capsys.readouterr().out
    record(
        fault="a cached batch truncated to half its bytes, then the evaluation rerun",
        happened="the rerun named the file, discarded it and attacked that batch again; the result equals the "
        "first run's (before: every rerun crashed with torch's 'checkpoint file is corrupted', naming no file)",
        handled="`read_batch` turns any read error into a named discard",
    )
    assert rerun == truth
    assert f"cache file {path} is discarded" in printed and "cannot be read" in printed
    assert torch.load(path, weights_only=True)["sha256"]  # written again, whole


def _certification(tmp_path: Path) -> tuple[Certification, Path]:
    callback = Certification(n0=8, n=64, batch_size=64, num_examples=6, sigma=0.25, print_table=False)
    return callback, tmp_path / "certify.tsv"


def _certify(tmp_path: Path) -> dict:
    callback, path = _certification(tmp_path)
    return callback.certify_dataset(_model(), callback.sigma_fn, _data(), (0.0, 1.0), path)


def test_a_changed_certification_log_is_discarded_and_recomputed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _certify(tmp_path)
    _, path = _certification(tmp_path)
    lines = path.read_text().splitlines()
    fields = lines[2].split("\t")
    fields[1], fields[2], fields[3], fields[4] = fields[1], fields[1], "9.000000", "1"  # certified right, radius 9
    path.write_text("\n".join([*lines[:2], "\t".join(fields), *lines[3:]]) + "\n")
    capsys.readouterr()
    rerun = _certify(tmp_path)
    printed = capsys.readouterr().out
    record(
        fault="one row of a finished certification TSV edited (its example certified correct at radius 9), then the "
        "same command rerun",
        happened=f"the TSV was named and discarded, its {rerun['computed']} examples certified again; the summary "
        "equals the first run's (before: the edited row was reused)",
        handled="`<tsv>.sha256` holds the SHA-256 of the log, rewritten after every row "
        "(`robustlit/utils/file_digest.py`); the settings sidecar holds the SHA-256 of its content",
    )
    assert f"{path} is discarded" in printed
    assert rerun["certified_acc"] == truth["certified_acc"] and rerun["radius"] == truth["radius"]
    assert rerun["computed"] == 6


def test_a_changed_certification_sidecar_discards_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _certify(tmp_path)
    _, path = _certification(tmp_path)
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(sidecar.read_text().replace('"n": 64', '"n": 65'))
    capsys.readouterr()
    rerun = _certify(tmp_path)
    assert f"{sidecar} is discarded" in capsys.readouterr().out
    assert rerun["computed"] == 6 and rerun["radius"] == truth["radius"]


def test_a_row_written_after_the_last_checksum_is_dropped_not_trusted(tmp_path: Path) -> None:
    """A kill between a row's write and its checksum leaves one unverified row: it is certified again."""
    truth = _certify(tmp_path)
    _, path = _certification(tmp_path)
    with path.open("a") as stream:  # an extra, unverified row
        stream.write("7\t3\t3\t5.000000\t1\t0:00:00.010000\n")
    rerun = _certify(tmp_path)
    assert rerun["computed"] == 0 and rerun["radius"] == truth["radius"]
    assert "\n7\t" not in path.read_text()
