"""The issue's commands, shrunk: fit configs/digits/variable_sigma.yaml, then test it with
configs/eval/certify.yaml and --ckpt_path (the KNN sigma comes back from the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from robustlit.certify import TSV_HEADER, read_rows
from robustlit.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fit_then_certify_from_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((CONFIGS / "digits/variable_sigma.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=3, limit_val_batches=1, enable_progress_bar=False)
    certify = yaml.safe_load((CONFIGS / "eval/certify.yaml").read_text())
    certify["trainer"]["callbacks"][0]["init_args"].update(n0=16, n=200, num_examples=4, print_table=False)
    model_config = _write(tmp_path / "model.yaml", config)
    main(["fit", "--config", model_config])
    [ckpt] = tmp_path.rglob("last.ckpt")

    main(
        [
            "test",
            "--config",
            model_config,
            "--config",
            _write(tmp_path / "certify.yaml", certify),
            "--ckpt_path",
            str(ckpt),
        ]
    )
    [tsv] = (ckpt.parent.parent / "certification").glob("certify_test_TrainingSetKNNSigma_n0-16_n-200_*.tsv")
    assert tsv.read_text().startswith(TSV_HEADER + "\n") and sorted(read_rows(tsv)) == [0, 1, 2, 3]
    [summary_path] = tmp_path.rglob("certification_test.json")
    summary = json.loads(summary_path.read_text())
    assert summary["settings"]["radius"] == "input_dependent" and summary["settings"]["semi_elasticity"] == 0.1
    assert summary["num_examples"] == 4 and summary["computed"] == 4
