"""Read a weights file without unpickling arbitrary objects: safetensors, or a ``.pt`` state_dict."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

SAFETENSORS_SUFFIX = ".safetensors"


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors stored in ``path``.

    ``.safetensors`` files are read with ``safetensors.torch.load_file`` (no pickle at all); any other
    file with ``torch.load(weights_only=True)`` (PyTorch's restricted unpickler: tensors and plain
    containers only). A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and the ``module.`` prefix
    of ``nn.DataParallel`` / DDP checkpoints are removed, as RobustBench's loader does.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path.resolve()}")
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return {_strip(k, "module."): v for k, v in state.items()}


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key
