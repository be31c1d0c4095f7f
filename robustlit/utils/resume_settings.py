"""``--ckpt_path`` with settings that differ from the checkpoint's: applied, or refused by name (docs/faults.md).

Lightning's CLI replaces the model's configuration by the hyperparameters stored in the checkpoint, so an
override such as ``--model.init_args.beta 1.0`` given with ``--ckpt_path`` was dropped without a word and the
run trained with the stored ``beta`` (``config.yaml`` recorded the stored value too). robustlit's CLI compares
the two instead: a value the config or the command line gives that differs from the checkpoint's is applied
(and printed); one that changes the model's parameters (an architecture setting) or its class is refused,
naming the settings, because the stored weights cannot be loaded into that model. A setting the config leaves
unset (``None``) keeps the checkpoint's value (e.g. a base model's configuration a mixture stores when built).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

#: model arguments the CLI links from the DataModule: the stored values are not settings of the user's
LINKED = ("num_classes", "mean", "std", "bounds")

Change = tuple[str, Any, Any]  # (dotted key under ``model``, given value, stored value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping) or hasattr(value, "as_dict"):
        items = value.as_dict() if hasattr(value, "as_dict") else value
        return {k: _plain(v) for k, v in items.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value) if isinstance(value, float) else int(value)
    return value


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def model_changes(given: Any, stored: Any) -> list[Change]:
    """Settings of the model config ``given`` (config files and command line) that differ from the checkpoint's
    ``stored`` one, as ``(key, given, stored)``; unset (``None``) values and linked keys are not changes."""
    given_flat, stored_flat = _flatten(_plain(given)), _flatten(_plain(stored))
    changes = []
    for key, value in sorted(given_flat.items()):
        if value is None or value == {} or key.rsplit(".", 1)[-1] in LINKED and key.count(".") == 1:
            continue
        old = stored_flat.get(key)
        if key in stored_flat and value != old:
            changes.append((key, value, old))
    return changes


def set_setting(model_config: Any, key: str, value: Any) -> None:
    """Set the dotted ``key`` (as :func:`model_changes` names it) in a model config of Namespaces and dicts."""
    *path, leaf = key.split(".")
    node = model_config
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    if isinstance(node, dict):
        node[leaf] = value
    else:
        setattr(node, leaf, value)


def describe(changes: list[Change]) -> str:
    return "; ".join(f"model.{key}: {old!r} in the checkpoint, {new!r} given" for key, new, old in changes)


def parameter_mismatches(model: nn.Module, stored_shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """State-dict entries whose presence or shape differs between ``model`` and the checkpoint."""
    own = {name: tuple(t.shape) for name, t in model.state_dict().items() if isinstance(t, Tensor)}
    out = [
        f"{name}: {stored_shapes[name]} in the checkpoint, {shape} now"
        for name, shape in own.items()
        if name in stored_shapes and stored_shapes[name] != shape
    ]
    out += [f"{name}: missing from the checkpoint" for name in own if name not in stored_shapes]
    out += [f"{name}: in the checkpoint, not in the model" for name in stored_shapes if name not in own]
    return out


__all__ = ["LINKED", "describe", "model_changes", "parameter_mismatches", "set_setting"]
