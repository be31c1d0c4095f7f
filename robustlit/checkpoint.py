"""Load a trained classifier from a robustlit checkpoint, ready for any attack library."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or not a robustlit checkpoint."""


def load_module(ckpt_path: str | Path, map_location: str | torch.device = "cpu"):  # noqa: ANN201
    """The full LightningModule (method, hyperparameters and weights) stored in ``ckpt_path``."""
    from robustlit.methods.base import RobustClassifier

    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path.resolve()}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"cannot read {path}: {type(error).__name__}: {error}. The file is corrupt or truncated (a run "
            "stopped while saving?); use another checkpoint, e.g. last.ckpt or best.ckpt of the same run."
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint of a robustlit method")
    try:
        return RobustClassifier.load_from_checkpoint(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise CheckpointError(f"cannot rebuild the model stored in {path}: {error}") from error


def load_classifier(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """``nn.Module`` in eval mode mapping [0, 1] inputs to logits (normalisation inside).

    Ready for torchattacks, AutoAttack or RobustBench-style evaluation::

        model = robustlit.load_classifier("runs/robustlit/version_0/checkpoints/best.ckpt")
        x_adv = torchattacks.PGD(model, eps=8/255)(x, y)
    """
    return load_module(ckpt_path, map_location).classifier.eval()
