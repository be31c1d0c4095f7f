"""Checkpoint integrity: SHA-256 checksums stored in every robustlit checkpoint, verified on load
(docs/faults.md, "Corrupt checkpoints and broken models").

``robustlit_weights_sha256`` covers every entry of the checkpoint's ``state_dict`` (name, dtype, shape and raw
bytes, in name order), so a flipped byte in any weight, a truncated tensor or a swapped entry is detected.
``robustlit_state_sha256`` holds one checksum per other entry of the checkpoint: the optimizer's moments, the
learning-rate schedulers, the loops' counters, the callbacks' state, the hyperparameters. A flipped bit in
Adam's moments used to resume a run that then diverged (train/loss 1801.7 against 2.19) and wrote a new
checkpoint with a fresh, valid weight checksum. Tensors and plain values (numbers, strings, lists, dicts) are
covered by content; any other object (a module pickled in the hyperparameters) by its type only. A checkpoint
written before these checksums existed is still checked for non-finite weights.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: checkpoint entry holding the SHA-256 of the state_dict (written by RobustClassifier.on_save_checkpoint)
CHECKSUM_KEY = "robustlit_weights_sha256"
#: checkpoint entry holding ``{entry: SHA-256}`` of every other entry (optimizer, schedulers, loops, callbacks, ...)
STATE_CHECKSUMS_KEY = "robustlit_state_sha256"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or not a robustlit checkpoint."""


def weights_checksum(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the tensors of a state_dict: name, dtype, shape and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        digest.update(name.encode())
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1)
        if raw.numel():
            digest.update(raw.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def value_checksum(value: Any) -> str:
    """SHA-256 (hex) of a nested value of tensors, numbers, strings, None, lists/tuples and mappings (by content,
    mappings in sorted key order, lists and tuples alike); other objects count by their type only."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        raw = value.detach().cpu().contiguous().reshape(-1)
        if raw.numel():
            digest.update(raw.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"M{len(value)}".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, bool | int | float | str | bytes):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:  # e.g. a module pickled in the hyperparameters: its repr may hold a memory address
        digest.update(f"O{type(value).__module__}.{type(value).__qualname__};".encode())


def state_checksums(checkpoint: Mapping[str, Any]) -> dict[str, str]:
    """``{entry: SHA-256}`` of every entry but the weights (see :data:`CHECKSUM_KEY`) and the checksums."""
    skip = {"state_dict", CHECKSUM_KEY, STATE_CHECKSUMS_KEY}
    return {str(key): value_checksum(value) for key, value in checkpoint.items() if key not in skip}


#: the state_dict prefix of the model every evaluation runs (``RobustClassifier.classifier``)
FORWARD_PREFIX = "classifier."


def non_finite_tensors(state_dict: Mapping[str, Any]) -> list[str]:
    """Names of floating-point tensors of the forward model (``classifier.*`` entries, or every entry when
    there are none) holding a NaN or an infinity. Method state outside the forward model may use NaN as a
    marker (AR-AdaLS's scores of examples not yet scored) and is not checked."""
    names = [name for name in state_dict if name.startswith(FORWARD_PREFIX)] or list(state_dict)
    return [
        name
        for name in names
        if isinstance(tensor := state_dict[name], torch.Tensor)
        and tensor.is_floating_point()
        and not bool(torch.isfinite(tensor).all())
    ]


def verify_checkpoint(checkpoint: Mapping[str, Any], source: str | Path) -> None:
    """Raise :class:`CheckpointError` naming ``source`` (and the tensor or entry) when a stored checksum does not
    match the weights or another entry (optimizer, schedulers, loops, callbacks), or a weight is not finite."""
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source} holds no state_dict: not a Lightning checkpoint")
    stored = checkpoint.get(CHECKSUM_KEY)
    if stored is not None and stored != weights_checksum(state_dict):
        raise CheckpointError(
            f"{source}: the weights do not match the checksum stored when the file was written (sha256 "
            f"{stored[:12]}..., now {weights_checksum(state_dict)[:12]}...): the file was corrupted after saving "
            "(disk, copy or transfer error). Use another checkpoint of the run (last.ckpt, best.ckpt) or copy it again."
        )
    stored_state = checkpoint.get(STATE_CHECKSUMS_KEY)
    if isinstance(stored_state, Mapping):
        now = state_checksums(checkpoint)
        changed = sorted(k for k in set(stored_state) | set(now) if stored_state.get(k) != now.get(k))
        if changed:
            raise CheckpointError(
                f"{source}: {', '.join(changed)} do not match the checksums stored when the file was written (the "
                "optimizer's moments, the schedulers, the loops' counters or the callbacks' state were corrupted after "
                "saving: a resumed run would continue from them). Use another checkpoint of the run (last.ckpt, "
                "best.ckpt) or copy it again."
            )
    bad = non_finite_tensors(state_dict)
    if bad:
        counts = ", ".join(f"{name} ({_count_non_finite(state_dict[name])} values)" for name in bad[:5])
        raise CheckpointError(
            f"{source}: non-finite weights (NaN or inf) in {counts}{' ...' if len(bad) > 5 else ''}. A model with "
            "such weights outputs NaN logits, which no evaluation may count. The run diverged before it saved this "
            "checkpoint: resume from an earlier one with a lower learning rate (--ckpt_path <older>.ckpt "
            "--model.init_args.optimizer.init_args.lr <lower>)."
        )


def _count_non_finite(tensor: torch.Tensor) -> int:
    return int((~torch.isfinite(tensor)).sum())


def unreadable_checkpoint(path: str | Path, error: BaseException) -> CheckpointError:
    """The error for a checkpoint file torch could not read: corrupt, never "retry with weights_only=False"."""
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else ""
    if zipfile.is_zipfile(path) and "Unsupported global" in text:
        name = text.split("Unsupported global:", 1)[1].split()[1] if "Unsupported global:" in text else "an object"
        return CheckpointError(
            f"{path} holds a Python object ({name}) beyond tensors and plain values, which safe loading "
            "(weights_only=True) refuses: robustlit's own checkpoints never do. If the file is not from a source you "
            "trust, do not load it; share models as exports (python -m robustlit.export, docs/interop.md)."
        )
    if "weights_only" in first_line or "Weights only load failed" in first_line:
        first_line = "torch's safe unpickler rejected its content"
    kind = "is not a torch checkpoint archive" if not zipfile.is_zipfile(path) else "cannot be read"
    return CheckpointError(
        f"{path} {kind} ({type(error).__name__}: {first_line}): the file is corrupt or truncated (a copy that did "
        "not finish, a disk error, or not a checkpoint at all). Use another checkpoint of the run (last.ckpt, "
        "best.ckpt) or copy it again."
    )


__all__ = [
    "CHECKSUM_KEY",
    "STATE_CHECKSUMS_KEY",
    "CheckpointError",
    "non_finite_tensors",
    "state_checksums",
    "unreadable_checkpoint",
    "value_checksum",
    "verify_checkpoint",
    "weights_checksum",
]
