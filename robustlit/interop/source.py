"""Where an externally trained classifier comes from, and how to build it (docs/interop.md)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from robustlit.interop.architecture import build_architecture
from robustlit.interop.exported import is_export, load_export
from robustlit.interop.weights import read_state_dict
from robustlit.utils.integrity import CheckpointError

SourceKind = Literal["module", "torchscript", "robustbench", "robustlit"]


@dataclass(frozen=True)
class InputNormalization:
    """Per-channel statistics the model expects its inputs to be normalised with, ``(x - mean) / std``."""

    mean: list[float]
    std: list[float]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"normalization: mean and std need the same non-zero length; got {self.mean}, {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"normalization: std must be positive; got {self.std}")


@dataclass(frozen=True)
class ModelSource:
    """An externally trained classifier (maps inputs to logits).

    Args:
        kind: ``module``: ``class_path`` + ``init_args`` build an ``nn.Module``, ``path`` (optional) is a
            ``.safetensors`` file or a ``.pt`` state_dict loaded into it; ``torchscript``: ``path`` is a
            ``torch.jit.save`` file; ``robustbench``: zoo model ``name`` for ``dataset``/``threat_model``
            with weights already under ``model_dir``; ``robustlit``: ``path`` is a folder or
            ``.safetensors`` file written by ``python -m robustlit.export`` (normalisation inside).
        path: weights / model file (see ``kind``).
        class_path: import path of the architecture, e.g. ``robustlit.models.SmallCNN``.
        init_args: keyword arguments of the architecture's constructor.
        name, dataset, threat_model, model_dir: RobustBench zoo coordinates, e.g.
            ``Carmon2019Unlabeled``, ``cifar10``, ``Linf``, ``models``.
        strict: require the weights to match the architecture's parameters exactly.
    """

    kind: SourceKind = "module"
    path: str | None = None
    class_path: str | None = None
    init_args: dict[str, Any] | None = None
    name: str | None = None
    dataset: str = "cifar10"
    threat_model: str = "Linf"
    model_dir: str = "models"
    strict: bool = True

    def __post_init__(self) -> None:
        if self.kind == "module" and not self.class_path:
            raise ValueError("source kind 'module' needs class_path (e.g. robustlit.models.SmallCNN)")
        if self.kind in ("torchscript", "robustlit") and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs path")
        if self.kind == "robustbench" and not self.name:
            raise ValueError("source kind 'robustbench' needs name (a RobustBench model id)")

    @property
    def normalises_inside(self) -> bool | None:
        """True when the source's models always normalise inside; None when the user must say."""
        return True if self.kind in ("robustbench", "robustlit") else None


def build_model(source: ModelSource) -> nn.Module:
    """The ``nn.Module`` named by ``source``, on CPU in eval mode."""
    if source.kind == "module":
        model = build_architecture(str(source.class_path), source.init_args)
        if source.path:
            missing, unexpected = model.load_state_dict(read_state_dict(source.path), strict=source.strict)
            if missing or unexpected:  # only reachable with strict=False: say what was skipped
                warnings.warn(f"{source.path}: missing keys {missing}, unexpected keys {unexpected}", stacklevel=2)
        return model.eval()
    if source.kind == "torchscript":
        return torch.jit.load(str(source.path), map_location="cpu").eval()
    if source.kind == "robustbench":
        from robustlit.interop.robustbench_zoo import load_robustbench_model

        return load_robustbench_model(str(source.name), source.dataset, source.threat_model, source.model_dir)
    # an export loads without unpickling anything; a Lightning .ckpt is not a source (it may run code)
    if not is_export(str(source.path)):
        raise CheckpointError(
            f"{source.path} is not a robustlit export (a folder holding model.safetensors, or a .safetensors file "
            "written by python -m robustlit.export); export a checkpoint first: python -m robustlit.export CKPT OUTDIR"
        )
    return load_export(str(source.path))
