"""Where a run writes: one output flag, and a resumed run logging into its own folder (``docs/faults.md``).

- ``--trainer.default_root_dir D`` places everything a run writes: a *relative* logger ``save_dir``
  and a relative ``cache_dir`` / ``output_dir`` / ``dirpath`` of a callback are resolved under ``D``
  (absolute paths are kept). Without ``default_root_dir`` they stay relative to the working folder.
- ``fit --ckpt_path .../<save_dir>/<name>/version_N/checkpoints/X.ckpt`` with a TensorBoard or CSV
  logger writing to the same ``<save_dir>/<name>`` (and no explicit ``version``) logs into
  ``version_N`` again instead of a new ``version_N+1``; a TensorBoard logger also gets
  ``purge_step`` = the checkpoint's global step, so TensorBoard hides what the interrupted process
  logged after that checkpoint (it is logged again by the resumed run), and no second ``hp_metric``
  placeholder.

These functions edit the parsed (not yet instantiated) config in place, so the ``config.yaml`` saved
with the run records the paths actually used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

#: init arguments of callbacks that name an output folder
OUTPUT_KEYS = ("cache_dir", "output_dir", "dirpath")
#: loggers whose folder layout is <save_dir>/<name>/version_<N>
VERSIONED_LOGGERS = ("TensorBoardLogger", "CSVLogger")
#: ``--ckpt_path`` values that are not files
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


def _entries(value: Any) -> Iterator[Any]:
    """Class-path entries (objects with ``init_args``) of a logger/callbacks config value."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if getattr(item, "init_args", None) is not None:
            yield item


def _get(namespace: Any, key: str) -> Any:
    return namespace.get(key) if hasattr(namespace, "get") else getattr(namespace, key, None)


def place_outputs_under_root(trainer: Any) -> list[str]:
    """Resolve the relative output paths of the trainer config under ``default_root_dir``; returns the
    changed keys (``logger.save_dir``, ``<Callback>.cache_dir``, ...)."""
    root = _get(trainer, "default_root_dir")
    if not root:
        return []
    changed = []
    places = [("save_dir", entry) for entry in _entries(_get(trainer, "logger"))]
    places += [(key, entry) for entry in _entries(_get(trainer, "callbacks")) for key in OUTPUT_KEYS]
    for key, entry in places:
        value = _get(entry.init_args, key)
        if isinstance(value, str | Path) and value and not Path(value).is_absolute():
            setattr(entry.init_args, key, str(Path(root) / value))
            changed.append(f"{str(entry.class_path).rsplit('.', 1)[-1]}.{key}")
    return changed


def reuse_run_version(trainer: Any, ckpt_path: str | Path | None) -> int | None:
    """When ``ckpt_path`` lies in ``<save_dir>/<name>/version_N/checkpoints/`` of the configured logger,
    set that logger's ``version`` to N (so the resumed run continues its own folder); returns N or None."""
    if not ckpt_path or str(ckpt_path) in SPECIAL_CKPT_PATHS:
        return None
    ckpt = Path(ckpt_path).resolve()
    match = re.fullmatch(r"version_(\d+)", ckpt.parent.parent.name)
    if ckpt.parent.name != "checkpoints" or match is None:
        return None
    for entry in _entries(_get(trainer, "logger")):
        args = entry.init_args
        if not str(entry.class_path).endswith(VERSIONED_LOGGERS) or _get(args, "version") is not None:
            continue
        save_dir, name = _get(args, "save_dir"), _get(args, "name")
        if save_dir is None:
            continue
        log_root = Path(save_dir).resolve() / name if name else Path(save_dir).resolve()
        if log_root == ckpt.parent.parent.parent:
            args.version = int(match.group(1))
            if str(entry.class_path).endswith("TensorBoardLogger"):
                if _get(args, "purge_step") is None:
                    args.purge_step = checkpoint_step(ckpt)
                args.default_hp_metric = False  # the first session already logged the placeholder
            return args.version
    return None


def checkpoint_step(ckpt: Path) -> int | None:
    """The ``global_step`` stored in a Lightning checkpoint (memory-mapped, tensors only: nothing is
    unpickled beyond plain types); ``None`` if it cannot be read that way."""
    try:
        step = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=True).get("global_step")
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the real load that follows
        return None
    return int(step) if isinstance(step, int) else None


__all__ = ["OUTPUT_KEYS", "checkpoint_step", "place_outputs_under_root", "reuse_run_version"]
