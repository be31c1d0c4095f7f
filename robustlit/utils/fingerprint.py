"""A content hash of a model's weights, used to key resumable evaluation caches."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """SHA-1 over every parameter and buffer (names, shapes and bytes); 12 hex characters."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(raw.view(torch.uint8).numpy().tobytes() if raw.numel() else b"")
    return digest.hexdigest()[:12]
