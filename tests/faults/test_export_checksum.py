"""An export's weights are checked against the SHA-256 in its card: a changed file is refused by
``robustlit.load_classifier`` and by the CLI (issue 23, case 4; docs/interop.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from fault_runs import record
from harness import CONFIGS, load, shrink, write
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import robustlit
from robustlit.cli import main
from robustlit.export import main as export_main
from robustlit.utils.integrity import weights_checksum


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of a shrunk digits Standard run (SmallCNN width 32)."""
    tmp = tmp_path_factory.mktemp("export-checksum")
    config = shrink(load(CONFIGS / "digits" / "standard.yaml"), tmp)
    config["test_after_fit"] = False
    main(["fit", "--config", str(write(config, tmp / "standard.yaml"))])
    return next(tmp.rglob("last.ckpt"))


def _export(ckpt: Path, outdir: Path) -> Path:
    assert export_main([str(ckpt), str(outdir)]) == 0
    return outdir


def _flip_exponent_bits(weights: Path, count: int = 4) -> str:
    """Flip the top exponent bit of ``count`` values of the first weight matrix, keeping the file's metadata
    (a disk or transfer error); returns the tensor's name."""
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() >= count and k.endswith("weight"))
    bits = tensors[name].view(-1)[:count].view(torch.int32)
    bits ^= 1 << 30
    save_file(tensors, str(weights), metadata=metadata)
    return name


def _pretrained_config(root: Path, export: Path) -> Path:
    config = {
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "limit_test_batches": 2,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(root / "runs"), "name": "from-export"},
            },
        },
        "model": {
            "class_path": "robustlit.methods.PretrainedClassifier",
            "init_args": {"source": {"kind": "robustlit", "path": str(export)}, "normalization": "inside"},
        },
        "data": {"class_path": "robustlit.data.DigitsDataModule", "init_args": {"batch_size": 64}},
    }
    path = root / "from-export.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_card_holds_the_weights_checksum(trained_ckpt: Path, tmp_path: Path) -> None:
    export = _export(trained_ckpt, tmp_path / "export")
    card = json.loads((export / "config.json").read_text())
    assert card["format_version"] == 2
    assert card["weights_sha256"] == weights_checksum(load_file(str(export / "model.safetensors")))
    with safe_open(str(export / "model.safetensors"), framework="pt") as handle:
        loading = json.loads(handle.metadata()["robustlit_card"])
    assert loading["weights_sha256"] == card["weights_sha256"]  # the lone file carries it too
    tested = main(["test", "--config", str(_pretrained_config(tmp_path, export))])  # an intact export evaluates
    assert "test/acc" in tested.trainer.callback_metrics


def test_flipped_bits_in_exported_weights_are_refused_by_load_classifier_and_the_cli(
    trained_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _export(trained_ckpt, tmp_path / "export")
    name = _flip_exponent_bits(export / "model.safetensors")
    lone = tmp_path / "lone.safetensors"
    shutil.copy(export / "model.safetensors", lone)
    for path in (export, export / "model.safetensors", lone):
        with pytest.raises(robustlit.CheckpointError, match="do not match the SHA-256") as from_api:
            robustlit.load_classifier(path)
        assert "model.safetensors" in str(from_api.value) or "lone.safetensors" in str(from_api.value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as from_cli:  # bad input: one line naming the source, exit status 2
        main(["test", "--config", str(_pretrained_config(tmp_path, export))])
    error = capsys.readouterr().err
    assert from_cli.value.code == 2, error
    (line,) = [line for line in error.splitlines() if line.startswith("error:")]
    assert line.startswith("error: model.init_args.source.path: ") and "do not match the SHA-256" in line, line
    assert "model.safetensors" in line and "Traceback" not in error
    record(
        fault=f"exponent bits flipped in 4 values of `{name}` in an export's model.safetensors (metadata kept)",
        happened="`load_classifier` (folder, file, a copy of the lone file) and `robustlit test` with the export as "
        "a `PretrainedClassifier` source refused it (before: loaded silently, accuracy 94.5% -> 30.9%, exit 0)",
        handled="`python -m robustlit.export` writes `weights_sha256` into config.json and the file's metadata; "
        "`load_export` recomputes it before loading the weights (`robustlit/interop/exported.py`)",
    )


def test_a_version_one_export_without_a_checksum_still_loads(trained_ckpt: Path, tmp_path: Path) -> None:
    export = _export(trained_ckpt, tmp_path / "export")
    card = json.loads((export / "config.json").read_text())
    del card["weights_sha256"]
    card["format_version"] = 1
    (export / "config.json").write_text(json.dumps(card))
    assert robustlit.load_classifier(export)(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    card["format_version"] = 2  # a version-2 card that lost its checksum is refused
    (export / "config.json").write_text(json.dumps(card))
    with pytest.raises(robustlit.CheckpointError, match="no weights_sha256"):
        robustlit.load_classifier(export)
