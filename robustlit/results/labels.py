"""Short labels (dataset, architecture, method) of a run, read from its saved LightningCLI config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_DATASETS = {"CIFAR10DataModule": "cifar10", "CIFAR100DataModule": "cifar100", "MNISTDataModule": "mnist"}


def summary_labels(summary: dict[str, Any]) -> dict[str, str]:
    """Labels an evaluation recorded in its own summary (``robustlit evaluate`` writes ``labels``: method,
    architecture, dataset); they take precedence over those read from a run's config."""
    return {k: str(v) for k, v in (summary.get("labels") or {}).items() if v}


def _short(class_path: Any) -> str:
    return str(class_path or "").rpartition(".")[2]


def dataset_label(config: dict[str, Any]) -> str:
    """``cifar10``, ``cifar100``, ``mnist`` (RobustBench's names), else the DataModule's name in lower case."""
    name = _short((config.get("data") or {}).get("class_path"))
    return _DATASETS.get(name, name.removesuffix("DataModule").lower() or "unknown")


def method_label(config: dict[str, Any]) -> str:
    return _short((config.get("model") or {}).get("class_path")) or "unknown"


def architecture_label(config: dict[str, Any]) -> str:
    """E.g. ``WideResNet-28-10`` (RobustBench's spelling), ``PreActResNet-18``, ``SmallCNN``; for a
    PretrainedClassifier the source's class name or RobustBench model id."""
    init_args = (config.get("model") or {}).get("init_args") or {}
    if "source" in init_args:
        source = init_args["source"] or {}
        kind = source.get("kind", "module")
        if kind == "robustbench":
            return str(source.get("name"))
        if kind == "module":
            return _short(source.get("class_path")) or "unknown"
        return f"{Path(str(source.get('path'))).name} ({kind})"
    backbone = init_args.get("backbone") or {}
    name, args = _short(backbone.get("class_path")), backbone.get("init_args") or {}
    if name == "WideResNet" and "depth" in args:
        return f"WideResNet-{args['depth']}-{args.get('widen_factor', 10)}"
    if name == "PreActResNet18":
        return "PreActResNet-18"
    return name or "unknown"
