"""Base models of a mixed classifier: from modules, robustlit checkpoints, or their saved configs.

A mixture checkpoint must reload without the base checkpoint files (and through
``robustlit test --ckpt_path``, which reads hyperparameters with ``torch.load(weights_only=True)``).
So when a base model comes from a CLI-trained robustlit checkpoint, its *configuration* (the
checkpoint's hyperparameters, plain Python types only) is kept in the mixture's hyperparameters;
reloading rebuilds the architecture from it and the mixture's state dict restores the weights.
Uses Lightning (``instantiate_module``), like :mod:`robustlit.mixed.module`; the other files of this
package are pure torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.cli import instantiate_module
from torch import nn

from robustlit.checkpoint import load_classifier
from robustlit.methods.base import RobustClassifier, plain_types

__all__ = ["MIXED_DIGITS_COMMAND", "load_base_model"]

#: How the digits base checkpoints named in configs/digits/mixed.yaml are created.
MIXED_DIGITS_COMMAND = "python examples/mixed_digits.py --bases-only"


def _config_of(path: Path) -> dict | None:
    """The hyperparameters of a CLI-trained robustlit checkpoint (``_class_path`` + init args), or None."""
    hparams = torch.load(path, map_location="cpu", weights_only=False).get("hyper_parameters") or {}
    if "_class_path" not in hparams:
        return None  # built in Python: its backbone object is not a configuration
    config = plain_types({k: v for k, v in hparams.items() if k != "_instantiator"})
    return config if _is_plain(config) else None


def _is_plain(value: object) -> bool:
    """Only None, bools, numbers, strings, lists/tuples and dicts of them (loadable with weights_only)."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def load_base_model(
    role: str, module: nn.Module | None, config: dict | None, path: str | None
) -> tuple[nn.Module, dict | None]:
    """``(model, config)``: the given module, else rebuilt from ``config``, else loaded from ``path``.

    A model rebuilt from ``config`` has freshly initialised weights: the caller restores them (the
    mixture's state dict). ``config`` in the result is what to save to rebuild it later (None for a
    module given directly, or a checkpoint built in Python rather than by the CLI).
    """
    if module is not None:
        return module, None
    if config is not None:
        return instantiate_module(RobustClassifier, dict(config)).classifier.eval(), config
    if path is None:
        raise ValueError(
            f"MixedClassifierModule needs the {role} base model: set {role}_checkpoint (a robustlit .ckpt) "
            f"or pass {role}=<nn.Module mapping [0, 1] inputs to logits>"
        )
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"MixedClassifierModule: {role}_checkpoint {path!r} does not exist (resolved: {file.resolve()})."
            f" For the digits configs create both base checkpoints with `{MIXED_DIGITS_COMMAND}`; otherwise"
            f" train a robustlit model and point model.init_args.{role}_checkpoint at its best.ckpt or last.ckpt."
        )
    return load_classifier(file), _config_of(file)
