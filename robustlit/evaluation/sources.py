"""What :func:`robustlit.evaluate` evaluates: a model (an ``nn.Module`` or a file) and a test split.

A model maps inputs in [0, 1] to logits, normalising inside (the RobustBench convention; docs/contracts.md).
A robustlit checkpoint or export normalises inside by construction. A TorchScript file or a plain
state_dict does not say what it expects, so its ``normalization`` must be stated: ``inside`` (it normalises
itself), ``data`` (the data module's mean/std) or explicit ``{"mean": [...], "std": [...]}``; an unstated one
is refused rather than guessed (a guess normalises a self-normalising model twice, or not at all).
"""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from robustlit.interop.source import InputNormalization, ModelSource, build_model
from robustlit.models.normalize import Normalize
from robustlit.utils.errors import FieldError, did_you_mean, one_line

#: short data names: ``digits`` -> ``robustlit.data.DigitsDataModule``
DATA_MODULES = {
    "digits": "DigitsDataModule",
    "tradeoff_digits": "TradeoffDigitsDataModule",
    "tsipras": "TsiprasDataModule",
    "mnist": "MNISTDataModule",
    "cifar10": "CIFAR10DataModule",
    "cifar100": "CIFAR100DataModule",
}
NORMALIZATION_HELP = (
    "state how the model expects its inputs: normalization 'inside' (it normalises [0, 1] inputs itself, as "
    "RobustBench models do), 'data' (the data module's mean/std, as robustlit's recipes train), or "
    '{"mean": [...], "std": [...]}'
)


@dataclass(frozen=True)
class EvaluationSplit:
    """The examples to evaluate and what the evaluation needs to know about them."""

    dataset: Dataset
    num_classes: int
    bounds: tuple[float, float] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label: str
    class_path: str | None = None
    init_args: dict[str, Any] | None = None


@dataclass(frozen=True)
class LoadedModel:
    """The classifier ([0, 1] -> logits) and how it was obtained (for labels and the saved config)."""

    classifier: nn.Module
    label: str
    architecture: str
    source: dict[str, Any] | None = None
    method: str = "external"


def _data_class(name: str) -> type:
    import robustlit.data as data

    short = DATA_MODULES.get(name.lower())
    if short is not None:
        return getattr(data, short)
    module, _, attribute = name.rpartition(".")
    if not module:
        raise FieldError(
            "data",
            f"unknown data {name!r}{did_you_mean(name, DATA_MODULES)}; one of {sorted(DATA_MODULES)} or a class path",
        )
    try:
        found = getattr(importlib.import_module(module), attribute, None)
    except ImportError as error:
        raise FieldError("data", f"cannot import {module!r} ({error})") from None
    if found is None:
        names = [n for n in dir(importlib.import_module(module)) if n.endswith("DataModule")]
        raise FieldError("data", f"{module!r} has no {attribute!r}{did_you_mean(attribute, names)}")
    return found


def evaluation_split(
    data: Any,
    *,
    split: str = "test",
    data_args: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> EvaluationSplit:
    """The split to evaluate: ``data`` is a short name (``digits``, ``mnist``, ``cifar10``, ...) or a
    DataModule class path (built with ``data_args``), a :class:`~robustlit.data.RobustDataModule`, a tensor
    pair ``(x, y)`` or a ``Dataset`` of ``(x, y)`` (with ``num_classes``; inputs in ``bounds``)."""
    from robustlit.data.base import RobustDataModule

    if split not in ("test", "val"):
        raise FieldError("split", f"'test' or 'val'; got {split!r}")
    init_args = dict(data_args or {})
    if isinstance(data, str):
        cls = _data_class(data)
        try:
            module = cls(**init_args)
        except TypeError as error:
            raise FieldError("data_args", f"{cls.__name__}: {error}") from None
        label = data.lower() if data.lower() in DATA_MODULES else cls.__name__.removesuffix("DataModule").lower()
        return _from_module(module, split, label, f"{cls.__module__}.{cls.__qualname__}", init_args)
    if isinstance(data, RobustDataModule):
        label = type(data).__name__.removesuffix("DataModule").lower()
        return _from_module(data, split, label, None, None)
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        dataset: Dataset = TensorDataset(x, y)
        classes = num_classes if num_classes is not None else int(y.max().item()) + 1
        return EvaluationSplit(dataset, classes, bounds, (0.0,), (1.0,), "tensors")
    if isinstance(data, Dataset):
        if num_classes is None:
            raise FieldError("num_classes", "give the number of classes of a Dataset")
        return EvaluationSplit(data, num_classes, bounds, (0.0,), (1.0,), type(data).__name__)
    raise FieldError("data", f"a data name, a DataModule, a Dataset or an (x, y) pair; got {type(data).__name__}")


def _from_module(
    module: Any, split: str, label: str, class_path: str | None, init_args: dict | None
) -> EvaluationSplit:
    module.prepare_data()
    module.setup("test" if split == "test" else "validate")
    dataset = module.test_dataset if split == "test" else module.val_dataset
    if dataset is None:
        raise FieldError("data", f"{type(module).__name__} has no {split} split")
    bounds = tuple(module.bounds) if module.bounds is not None else None
    return EvaluationSplit(
        dataset, int(module.num_classes), bounds, tuple(module.mean), tuple(module.std), label, class_path, init_args
    )


def _normalization(value: Any) -> str | InputNormalization | None:
    if value is None or value in ("inside", "data"):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise FieldError("normalization", f"{value!r}: {NORMALIZATION_HELP}") from None
    if isinstance(value, InputNormalization):
        return value
    if isinstance(value, Mapping) and set(value) == {"mean", "std"}:
        try:
            return InputNormalization([float(m) for m in value["mean"]], [float(s) for s in value["std"]])
        except (TypeError, ValueError) as error:
            raise FieldError("normalization", str(error)) from None
    if isinstance(value, Sequence) and len(value) == 2:
        return _normalization({"mean": value[0], "std": value[1]})
    raise FieldError("normalization", f"{value!r}: {NORMALIZATION_HELP}")


def _in_front(model: nn.Module, normalization: str | InputNormalization | None, split: EvaluationSplit) -> nn.Module:
    if normalization in (None, "inside"):
        return model
    if normalization == "data":
        return nn.Sequential(Normalize(split.mean, split.std), model)
    return nn.Sequential(Normalize(normalization.mean, normalization.std), model)  # type: ignore[union-attr]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_model(
    model: nn.Module | str | Path,
    split: EvaluationSplit,
    *,
    normalization: Any = None,
    architecture: str | None = None,
    architecture_args: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """The classifier to evaluate, [0, 1] inputs -> logits, on CPU (see the module docstring)."""
    stated = _normalization(normalization)
    if isinstance(model, nn.Module):
        name = type(model).__name__
        return LoadedModel(_in_front(model, stated, split), name, name)
    path = Path(model)
    if not path.exists():
        raise FieldError("model", f"no file or folder at {path.resolve()}")
    from robustlit.interop.exported import is_export, read_card

    if architecture is None and (
        path.suffix == ".ckpt" or path.is_dir() or _robustlit_export(path, is_export, read_card)
    ):
        if stated not in (None, "inside"):
            raise FieldError(
                "normalization",
                f"{path.name} is a robustlit checkpoint or export: it normalises inside; leave it unset",
            )
        from robustlit.checkpoint import load_classifier, load_module

        try:
            if path.suffix == ".ckpt":
                module = load_module(path)
                classifier, method = module.classifier.eval(), type(module).__name__
            else:
                classifier = load_classifier(path)
                method = str((read_card(path).get("training") or {}).get("method", "external")).rpartition(".")[2]
        except (OSError, RuntimeError, ValueError) as error:  # CheckpointError is a RuntimeError or ValueError
            raise FieldError("model", one_line(error)) from error
        arch = type(classifier[1]).__name__ if isinstance(classifier, nn.Sequential) else type(classifier).__name__
        kind = "checkpoint" if path.suffix == ".ckpt" else "robustlit"
        return LoadedModel(classifier, model_label(path), arch, {"kind": kind, "path": str(path)}, method)
    if stated is None:
        raise FieldError("normalization", f"{path.name} does not say how it expects its inputs: {NORMALIZATION_HELP}")
    if architecture is not None:
        source = ModelSource(
            kind="module", class_path=architecture, init_args=dict(architecture_args or {}), path=str(path)
        )
        kind_label = architecture.rpartition(".")[2]
    elif _is_torchscript(path):
        source = ModelSource(kind="torchscript", path=str(path))
        kind_label = f"{path.name} (torchscript)"
    else:
        raise FieldError(
            "architecture",
            f"{path.name} holds weights without an architecture: give the class that builds it "
            "(--architecture robustlit.models.SmallCNN --architecture-args '{\"width\": 32}')",
        )
    try:
        built = build_model(source)
    except (OSError, RuntimeError, ValueError, TypeError, ImportError) as error:
        field = (
            "architecture" if architecture is not None and not isinstance(error, OSError | RuntimeError) else "model"
        )
        raise FieldError(field, one_line(error)) from error
    classifier = _in_front(built, stated, split)
    record = {"kind": source.kind, "path": str(path), "class_path": source.class_path, "init_args": source.init_args}
    return LoadedModel(classifier, model_label(path), kind_label, {k: v for k, v in record.items() if v is not None})


def _robustlit_export(path: Path, is_export: Any, read_card: Any) -> bool:
    if not is_export(path):
        return False
    try:
        read_card(path)
    except ValueError:
        return False  # plain safetensors weights: a state_dict that needs its architecture
    return True


def model_label(path: Path) -> str:
    """A short name of a model file: its stem, ``<run>-<version>-best`` for a run's checkpoint."""
    path = path.resolve()
    if path.name in ("best.ckpt", "last.ckpt") and path.parent.name == "checkpoints":
        return f"{path.parent.parent.parent.name}-{path.parent.parent.name}-{path.stem}"
    return path.stem if path.is_file() else path.name


def example_shape(split: EvaluationSplit) -> tuple[int, ...]:
    """One input's shape (the L2 radius's range depends on it)."""
    return tuple(torch.as_tensor(split.dataset[0][0]).shape)
