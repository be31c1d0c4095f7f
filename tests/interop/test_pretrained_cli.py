"""A model saved outside robustlit, evaluated from the CLI, gives exactly its robustlit checkpoint's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from interop_helpers import REPO, CheckpointEvaluation, TrainedRun, eval_fragment, results_of

import robustlit
from robustlit.cli import main

PRETRAINED_CONFIG = REPO / "configs" / "eval" / "pretrained_digits.yaml"
# TorchScript is deprecated in favour of torch.export but still what many model zoos ship
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning", "ignore::torch.jit.TracerWarning")


@pytest.fixture(scope="module")
def from_checkpoint(checkpoint_evaluation: CheckpointEvaluation) -> dict:
    return checkpoint_evaluation.results


def _pretrained(trained_run: TrainedRun, name: str, *overrides: str):  # noqa: ANN202
    """The shipped config (it leaves the normalisation to the command line: ``data`` unless an override says)."""
    fragment = eval_fragment(trained_run.root, name)
    stated = [] if "--model.init_args.normalization" in overrides else ["--model.init_args.normalization", "data"]
    return main(["test", "--config", str(PRETRAINED_CONFIG), "--config", str(fragment), *stated, *overrides])


def test_checkpoint_numbers_are_meaningful(from_checkpoint: dict) -> None:
    # a trained but undefended model: PGD must break most of it, or the equality tests below prove little
    assert from_checkpoint["num_examples"] == 200
    assert from_checkpoint["clean_acc"] > 0.85, from_checkpoint
    assert from_checkpoint["pgd"] < 0.5 * from_checkpoint["clean_acc"], from_checkpoint
    print(f"checkpoint: {from_checkpoint}")


@pytest.mark.parametrize("weights", ["backbone_pt", "backbone_safetensors"])
def test_state_dict_from_cli_matches_checkpoint(trained_run: TrainedRun, from_checkpoint: dict, weights: str) -> None:
    path = getattr(trained_run, weights)
    cli = _pretrained(trained_run, f"pretrained-{weights}", "--model.init_args.source.path", str(path))
    assert not list(Path(cli.trainer.log_dir).rglob("*.ckpt"))  # nothing trained, nothing saved
    assert results_of(cli) == from_checkpoint


def test_data_normalization_is_the_stated_one(trained_run: TrainedRun, from_checkpoint: dict) -> None:
    # `data` takes the linked DataModule statistics: for this model (trained by robustlit on digits)
    # they are the stated ones, so the numbers are the same
    cli = _pretrained(
        trained_run, "pretrained-data-norm", "--model.init_args.source.path", str(trained_run.backbone_pt),
        "--model.init_args.normalization", "data",
    )  # fmt: skip
    assert cli.model.classifier[0].mean.tolist() == pytest.approx([0.3])
    assert results_of(cli) == from_checkpoint


def test_torchscript_from_cli_matches_checkpoint(trained_run: TrainedRun, from_checkpoint: dict) -> None:
    classifier = robustlit.load_classifier(trained_run.ckpt)  # Normalize inside the traced graph
    traced = torch.jit.trace(classifier, torch.rand(2, 1, 8, 8))
    path = trained_run.root / "classifier.ts"
    traced.save(str(path))
    source = json.dumps({"kind": "torchscript", "path": str(path)})
    cli = _pretrained(
        trained_run, "pretrained-ts", "--model.init_args.source", source, "--model.init_args.normalization", "inside"
    )
    normalize = cli.model.classifier[0]  # the linked digits mean/std are ignored: no double normalisation
    assert normalize.mean.tolist() == [0.0] and normalize.std.tolist() == [1.0]
    assert results_of(cli) == from_checkpoint


def test_double_normalisation_changes_the_numbers(trained_run: TrainedRun, from_checkpoint: dict) -> None:
    # the check above can fail: normalising the traced classifier's inputs a second time is measurably wrong
    classifier = robustlit.load_classifier(trained_run.ckpt)
    traced = torch.jit.trace(classifier, torch.rand(2, 1, 8, 8))
    path = trained_run.root / "classifier-twice.ts"
    traced.save(str(path))
    source = json.dumps({"kind": "torchscript", "path": str(path)})
    cli = _pretrained(
        trained_run, "pretrained-twice", "--model.init_args.source", source, "--model.init_args.normalization", "data"
    )
    assert results_of(cli)["clean_acc"] != from_checkpoint["clean_acc"]


def test_missing_weights_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-weights.safetensors"
    with pytest.raises(SystemExit) as refused:  # bad input: one line naming the field, exit status 2
        main(
            ["test", "--config", str(PRETRAINED_CONFIG), "--model.init_args.source.path", str(missing)]
            + ["--model.init_args.normalization", "data"]
        )
    error = capsys.readouterr().err
    assert refused.value.code == 2 and "Traceback" not in error
    assert f"error: model.init_args.source.path: no weights file at {missing}" in error.splitlines()


def test_fit_is_refused(trained_run: TrainedRun) -> None:
    args = ["fit", "--config", str(PRETRAINED_CONFIG), "--config", str(eval_fragment(trained_run.root, "refused"))]
    with pytest.raises(RuntimeError, match="evaluation-only"):
        main(
            [*args, "--model.init_args.source.path", str(trained_run.backbone_pt), "--trainer.max_epochs", "1"]
            + ["--model.init_args.normalization", "data"]
        )


def test_command_line_only(trained_run: TrainedRun, from_checkpoint: dict) -> None:
    # no model config file: `--model PretrainedClassifier` and dotted source keys, plus an attack fragment
    fragment = eval_fragment(trained_run.root, "command-line")
    cli = main(
        [
            "test", "--config", str(fragment),
            "--model", "robustlit.methods.PretrainedClassifier",
            "--model.init_args.source.kind", "module",
            "--model.init_args.source.class_path", "robustlit.models.SmallCNN",
            "--model.init_args.source.init_args", '{"num_classes": 10, "in_channels": 1, "width": 32}',
            "--model.init_args.source.path", str(trained_run.backbone_pt),
            "--model.init_args.normalization", '{"mean": [0.3], "std": [0.38]}',
            "--data", "robustlit.data.DigitsDataModule",
        ]
    )  # fmt: skip
    assert results_of(cli) == from_checkpoint
