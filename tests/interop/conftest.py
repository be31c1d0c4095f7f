"""One digits model trained through the CLI, and its checkpoint evaluation, shared by the interop tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from interop_helpers import (  # noqa: E402
    REPO,
    CheckpointEvaluation,
    TrainedRun,
    eval_fragment,
    quiet_trainer,
    results_of,
)

import robustlit  # noqa: E402
from robustlit.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    root = tmp_path_factory.mktemp("interop")
    config = yaml.safe_load((REPO / "configs" / "digits" / "standard.yaml").read_text())
    config["test_after_fit"] = False
    config["trainer"] = quiet_trainer({"max_epochs": 3, "num_sanity_val_steps": 0}, root, "digits-standard")
    config["model"]["init_args"]["lr_scheduler"]["init_args"]["T_max"] = 3
    path = root / "standard.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    main(["fit", "--config", str(path)])
    ckpt = next(root.glob("runs/digits-standard/version_0/checkpoints/last.ckpt"))
    backbone = robustlit.load_module(ckpt).backbone.state_dict()
    torch.save(backbone, root / "backbone.pt")
    save_file(backbone, str(root / "backbone.safetensors"))
    return TrainedRun(root, path, ckpt, root / "backbone.pt", root / "backbone.safetensors")


@pytest.fixture(scope="session")
def checkpoint_evaluation(trained_run: TrainedRun) -> CheckpointEvaluation:
    """``robustlit test --config <training config> --config <attack fragment> --ckpt_path last.ckpt``."""
    fragment = eval_fragment(trained_run.root, "from-ckpt")
    cli = main(
        ["test", "--config", str(trained_run.config), "--config", str(fragment), "--ckpt_path", str(trained_run.ckpt)]
    )
    return CheckpointEvaluation(Path(cli.trainer.log_dir), results_of(cli))
