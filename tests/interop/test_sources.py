"""Model sources: weight files, RobustBench zoo (loader monkeypatched: tests never download), normalisation."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from robustlit.interop import (
    InputNormalization,
    ModelSource,
    RobustBenchUnavailableError,
    build_model,
    read_state_dict,
)
from robustlit.methods import PretrainedClassifier
from robustlit.models import Normalize, SmallCNN

SMALL = {"num_classes": 10, "in_channels": 1, "width": 4, "hidden": 8}


def test_state_dict_wrappers_and_ddp_prefix_are_removed(tmp_path: Path) -> None:
    model = SmallCNN(**SMALL)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "w.pt")
    built = build_model(
        ModelSource(class_path="robustlit.models.SmallCNN", init_args=SMALL, path=str(tmp_path / "w.pt"))
    )
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(built(x), model.eval()(x))


def test_pickled_objects_are_refused_in_pt_files(tmp_path: Path) -> None:
    torch.save(SmallCNN(**SMALL), tmp_path / "whole_model.pt")  # a pickled module, not a state_dict
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        read_state_dict(tmp_path / "whole_model.pt")


def test_wrong_architecture_fails_loudly(tmp_path: Path) -> None:
    torch.save(SmallCNN(**SMALL).state_dict(), tmp_path / "w.pt")
    source = ModelSource(
        class_path="robustlit.models.SmallCNN", init_args={**SMALL, "width": 8}, path=str(tmp_path / "w.pt")
    )
    with pytest.raises(RuntimeError, match="size mismatch"):
        build_model(source)


def test_inside_ignores_linked_statistics_and_data_uses_them() -> None:
    source = ModelSource(class_path="robustlit.models.SmallCNN", init_args=SMALL)
    inside = PretrainedClassifier(source, "inside", mean=(0.3,), std=(0.38,))
    data = PretrainedClassifier(source, "data", mean=(0.3,), std=(0.38,))
    explicit = PretrainedClassifier(source, InputNormalization([0.5], [0.25]), mean=(0.3,), std=(0.38,))
    assert (inside.classifier[0].mean.item(), inside.classifier[0].std.item()) == (0.0, 1.0)
    assert data.classifier[0].mean.item() == pytest.approx(0.3)
    assert explicit.classifier[0].std.item() == 0.25


def test_wrong_number_of_classes_is_reported() -> None:
    source = ModelSource(class_path="robustlit.models.SmallCNN", init_args={**SMALL, "num_classes": 3})
    module = PretrainedClassifier(source, "inside", num_classes=10)
    with pytest.raises(ValueError, match=r"expected \(N, 10\) logits"):
        module(torch.rand(2, 1, 8, 8))


def test_training_is_refused() -> None:
    module = PretrainedClassifier(ModelSource(class_path="robustlit.models.SmallCNN", init_args=SMALL), "inside")
    with pytest.raises(RuntimeError, match="evaluation-only"):
        module.configure_optimizers()


def _fake_robustbench(monkeypatch: pytest.MonkeyPatch, model: nn.Module, calls: list[dict]) -> None:
    def load_model(**kwargs: object) -> nn.Module:
        calls.append(kwargs)
        return model

    package, utils = types.ModuleType("robustbench"), types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    package.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)


def test_robustbench_zoo_model_from_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zoo_model = nn.Sequential(Normalize([0.5], [0.2]), SmallCNN(**SMALL)).eval()  # zoo models normalise inside
    calls: list[dict] = []
    _fake_robustbench(monkeypatch, zoo_model, calls)
    weights = tmp_path / "cifar10" / "Linf" / "Fake2024Model.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    source = ModelSource(
        kind="robustbench", name="Fake2024Model", dataset="cifar10", threat_model="Linf", model_dir=str(tmp_path)
    )
    module = PretrainedClassifier(source, "inside", mean=(0.3,), std=(0.38,))
    assert calls == [
        {"model_name": "Fake2024Model", "model_dir": str(tmp_path), "dataset": "cifar10", "threat_model": "Linf"}
    ]
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(module(x), zoo_model(x))  # nothing added in front: normalised once, by the zoo model
    with pytest.raises(ValueError, match="normalised twice"):
        PretrainedClassifier(source, "data", mean=(0.3,), std=(0.38,))


def test_robustbench_without_local_weights_never_calls_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    _fake_robustbench(monkeypatch, nn.Identity(), calls)
    source = ModelSource(kind="robustbench", name="Carmon2019Unlabeled", model_dir=str(tmp_path))
    with pytest.raises(RobustBenchUnavailableError, match="never downloads"):
        build_model(source)
    assert calls == []


def test_source_validation() -> None:
    with pytest.raises(ValueError, match="class_path"):
        ModelSource(kind="module")
    with pytest.raises(ValueError, match="needs path"):
        ModelSource(kind="torchscript")
    with pytest.raises(ValueError, match="std must be positive"):
        InputNormalization([0.5], [0.0])


def test_unimportable_robustbench_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "cifar10" / "Linf" / "Fake2024Model.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)  # import fails, as torchattacks' stale copy does
    source = ModelSource(kind="robustbench", name="Fake2024Model", model_dir=str(tmp_path))
    with pytest.raises(RobustBenchUnavailableError, match="cannot import robustbench"):
        build_model(source)
