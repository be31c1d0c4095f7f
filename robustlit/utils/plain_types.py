"""Plain Python values for checkpoints that must load with ``torch.load(weights_only=True)``.

jsonargparse's restricted types (``PositiveInt``, ``ClosedUnitInterval``, ...) parse to *subclasses*
of int/float. Pickled inside a checkpoint (hyperparameters, callback state) they make
``torch.load(weights_only=True)`` refuse the file, which LightningCLI uses for ``--ckpt_path`` and
Lightning for ``trainer.test(ckpt_path=...)``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain"]


def plain(value: Any, strict: bool = False) -> Any:
    """``value`` with bools, numbers, strings, lists/tuples (-> lists) and dicts as plain Python types.

    Other objects (e.g. an ``nn.Module`` hyperparameter) are returned unchanged, or raise TypeError
    when ``strict``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v, strict) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str | int) else str(k): plain(v, strict) for k, v in value.items()}
    if strict:
        raise TypeError(f"{type(value).__name__} is not a plain configuration value")
    return value
