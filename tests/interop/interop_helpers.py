"""Shared pieces of the interop tests: constants, the trained-run records, config fragments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PGD = {"name": "pgd", "norm": "Linf", "eps": 0.2, "steps": 10, "step_size": 0.05}
PGD_METRIC = "pgd10_linf_0.2"
NUM_EXAMPLES = 200


@dataclass(frozen=True)
class TrainedRun:
    root: Path
    config: Path  # the training config (digits Standard, SmallCNN width 32)
    ckpt: Path
    backbone_pt: Path
    backbone_safetensors: Path


def quiet_trainer(trainer: dict, root: Path, name: str) -> dict:
    trainer.update(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(root / "runs"), "name": name},
    }
    return trainer


def eval_fragment(root: Path, name: str, attacks: list[dict] | None = None, num_examples: int = NUM_EXAMPLES) -> Path:
    """A config fragment: the test-stage attack every comparison uses, and a logger of its own."""
    callback = {
        "class_path": "robustlit.callbacks.AdversarialEvaluation",
        "init_args": {
            "attacks": attacks or [PGD],
            "num_examples": num_examples,
            "batch_size": 100,
            "stages": ["test"],
            "print_table": False,
        },
    }
    fragment = {"seed_everything": 0, "trainer": quiet_trainer({"callbacks": [callback]}, root, name)}
    path = root / f"eval-{name}.yaml"
    path.write_text(yaml.safe_dump(fragment, sort_keys=False))
    return path


@dataclass(frozen=True)
class CheckpointEvaluation:
    log_dir: Path  # the `robustlit test` run folder (adversarial_evaluation_test.json, config.yaml)
    results: dict  # test/acc, clean_acc, pgd robust accuracy, num_examples


def results_of(cli) -> dict:  # noqa: ANN001 - the RobustLitCLI main() returns
    """The numbers every comparison uses, read from the callback's JSON and Lightning's metrics."""
    summary = json.loads((Path(cli.trainer.log_dir) / "adversarial_evaluation_test.json").read_text())
    return {
        "test/acc": cli.trainer.callback_metrics["test/acc"].item(),
        "clean_acc": summary["clean_acc"],
        "pgd": summary["attacks"][PGD_METRIC]["robust_acc"],
        "num_examples": summary["num_examples"],
    }
