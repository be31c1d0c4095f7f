"""The shipped evaluation fragments (certification, calibration) apply unchanged to an external model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from interop_helpers import REPO, CheckpointEvaluation, TrainedRun, quiet_trainer

from robustlit.cli import main

PRETRAINED_CONFIG = REPO / "configs" / "eval" / "pretrained_digits.yaml"
SMALL = {"num_examples": 8, "n": 200, "n0": 16, "batch_size": 100}


def _shrunk_fragment(name: str, root: Path) -> Path:
    fragment = yaml.safe_load((REPO / "configs" / "eval" / name).read_text())
    for callback in fragment["trainer"]["callbacks"]:
        args = callback["init_args"]
        args.update({k: v for k, v in SMALL.items() if k in args and k != "num_examples"})
        if "n" in args:  # certification: a few images only (calibration keeps the whole test split)
            args["num_examples"] = SMALL["num_examples"]
        if "output_dir" in args:
            args["output_dir"] = str(root / "certification")
    quiet_trainer(fragment["trainer"], root, f"fragment-{Path(name).stem}")
    path = root / f"shrunk-{name}"
    path.write_text(yaml.safe_dump(fragment, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("fragment", "written"),
    [("calibration.yaml", "calibration_test.json"), ("certify.yaml", "certification_test.json")],
)
def test_fragment_runs_on_a_pretrained_classifier(
    trained_run: TrainedRun, checkpoint_evaluation: CheckpointEvaluation, fragment: str, written: str
) -> None:
    path = _shrunk_fragment(fragment, trained_run.root)
    source = ["--model.init_args.source.path", str(trained_run.backbone_safetensors)]
    source += ["--model.init_args.normalization", "data"]
    cli = main(["test", "--config", str(PRETRAINED_CONFIG), "--config", str(path), *source])
    summary = json.loads((Path(cli.trainer.log_dir) / written).read_text())
    assert summary, written
    # Lightning's own test accuracy is the checkpoint's: the fragment changed nothing about the model
    assert cli.trainer.callback_metrics["test/acc"].item() == checkpoint_evaluation.results["test/acc"]
