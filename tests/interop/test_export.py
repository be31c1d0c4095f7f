"""Export to safetensors + JSON card, and load back without unpickling: identical logits."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from interop_helpers import PGD_METRIC, REPO, CheckpointEvaluation, TrainedRun
from safetensors.torch import save_file

import robustlit
from robustlit.export import main as export_main
from robustlit.interop import ExportFormatError, ModelSource
from robustlit.methods import PretrainedClassifier


@pytest.fixture(scope="module")
def exported(trained_run: TrainedRun, checkpoint_evaluation: CheckpointEvaluation) -> Path:
    outdir = trained_run.root / "exports" / "digits-standard"
    args = [str(trained_run.ckpt), str(outdir), "--eval-dir", str(checkpoint_evaluation.log_dir)]
    assert export_main(args) == 0
    return outdir


def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def test_export_folder_layout_and_card(exported: Path, checkpoint_evaluation: CheckpointEvaluation) -> None:
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = json.loads((exported / "config.json").read_text())
    assert card["architecture"] == {
        "class_path": "robustlit.models.SmallCNN",
        "init_args": {"num_classes": 10, "in_channels": 1, "width": 32, "hidden": 128},
    }
    assert card["normalization"] == {"mean": [0.3], "std": [0.38]}
    assert card["bounds"] == [0.0, 1.0] and card["num_classes"] == 10
    assert card["training"]["method"] == "robustlit.methods.standard.Standard"
    assert card["training"]["optimizer"]["class_path"] == "torch.optim.Adam"
    assert card["training"]["data"]["class_path"] == "robustlit.data.DigitsDataModule"
    adversarial = card["evaluation"]["adversarial_evaluation_test"]
    assert adversarial["clean_acc"] == checkpoint_evaluation.results["clean_acc"]
    assert adversarial["attacks"][PGD_METRIC]["robust_acc"] == checkpoint_evaluation.results["pgd"]
    assert {"torch", "lightning", "safetensors", "robustlit"} <= card["versions"].keys()
    readme = (exported / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: robustlit") and f"| {PGD_METRIC} |" in readme


def test_load_classifier_gives_identical_logits_without_unpickling(
    exported: Path, trained_run: TrainedRun, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        reference = robustlit.load_classifier(trained_run.ckpt)(x)  # from the pickled checkpoint
    lone = tmp_path / "elsewhere.safetensors"  # the weights file alone carries its loading fields
    shutil.copy(exported / "model.safetensors", lone)
    forbid_unpickling(monkeypatch)
    with pytest.raises(Exception, match="unpickling was attempted"):  # the guard is live
        robustlit.load_classifier(trained_run.ckpt)
    for path in (exported, exported / "model.safetensors", lone):
        with torch.no_grad():
            assert torch.equal(robustlit.load_classifier(path)(x), reference), path


def test_export_evaluates_as_pretrained_classifier(exported: Path, trained_run: TrainedRun) -> None:
    module = PretrainedClassifier(ModelSource(kind="robustlit", path=str(exported)), "inside", mean=(0.3,), std=(0.38,))
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(module(x), robustlit.load_classifier(trained_run.ckpt)(x))


def test_source_kind_robustlit_takes_exports_only(trained_run: TrainedRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``.ckpt`` named as an export is refused before anything is unpickled (exports load without pickle)."""
    from robustlit.interop import build_model
    from robustlit.utils.integrity import CheckpointError

    forbid_unpickling(monkeypatch)
    with pytest.raises(CheckpointError, match="not a robustlit export"):
        build_model(ModelSource(kind="robustlit", path=str(trained_run.ckpt)))


def test_plain_safetensors_is_not_taken_for_an_export(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ExportFormatError, match="not written by robustlit.export"):
        robustlit.load_classifier(tmp_path / "plain.safetensors")


def test_export_command_exit_status(trained_run: TrainedRun, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "robustlit.export"]
    ok = subprocess.run(
        [*command, str(trained_run.ckpt), str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    bad = subprocess.run(
        [*command, str(tmp_path / "missing.ckpt"), str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "missing.ckpt" in bad.stderr


def test_backbone_built_in_python_needs_its_init_args(tmp_path: Path) -> None:
    from robustlit.export import export_checkpoint
    from robustlit.methods import Standard
    from robustlit.models import SmallCNN

    module = Standard(backbone=SmallCNN(10, 1, width=4, hidden=8), mean=(0.3,), std=(0.38,))
    ckpt = tmp_path / "python.ckpt"
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**checkpoint, "robustlit_class_path": "robustlit.methods.standard.Standard"}, ckpt)
    with pytest.raises(ValueError, match="backbone-init-args"):
        export_checkpoint(ckpt, tmp_path / "refused")
    outdir = export_checkpoint(ckpt, tmp_path / "out", {"num_classes": 10, "in_channels": 1, "width": 4, "hidden": 8})
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(robustlit.load_classifier(outdir)(x), module.eval().classifier(x))


def test_classifier_without_a_backbone_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustlit import export

    def no_backbone(path: Path) -> dict:
        return {"state_dict": {}, "hyper_parameters": {"alpha": 0.5}}

    monkeypatch.setattr(export, "read_checkpoint", no_backbone)
    monkeypatch.setattr(export, "module_from_checkpoint", lambda checkpoint, path: _FakeMixture())
    with pytest.raises(ValueError, match="no `backbone` argument"):
        export.export_checkpoint(tmp_path / "mixed.ckpt", tmp_path / "out")


class _FakeMixture(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from robustlit.models import Normalize

        self.classifier = torch.nn.Sequential(Normalize(), torch.nn.Identity())
