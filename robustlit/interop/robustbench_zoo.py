"""A RobustBench model-zoo classifier, from weights already on disk (robustlit never downloads).

Croce et al., 2021, "RobustBench: a standardized adversarial robustness benchmark" (NeurIPS Datasets
and Benchmarks). Zoo models take [0, 1] inputs and normalise inside, so they are evaluated with
``normalization: inside``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn


class RobustBenchUnavailableError(RuntimeError):
    """The ``robustbench`` package or the model's weights are not available locally."""


def weights_path(model_dir: str | Path, name: str, dataset: str, threat_model: str) -> Path:
    """Where ``robustbench.utils.load_model`` keeps (and looks for) a zoo model's weights."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def load_robustbench_model(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> nn.Module:
    """``robustbench.utils.load_model(name, model_dir, dataset, threat_model)`` with the weights file
    required to exist first (an ensemble's first member ``<name>.pt_m0.pt`` counts), and Hugging Face
    hub access switched off for the call, so nothing is ever downloaded."""
    path = weights_path(model_dir, name, dataset, threat_model)
    ensemble_first = path.with_name(f"{path.name}_m0.pt")
    if not path.is_file() and not ensemble_first.is_file():
        raise RobustBenchUnavailableError(
            f"no local weights for RobustBench model {name!r} ({dataset}, {threat_model}) at {path}. robustlit "
            "never downloads: fetch them once with robustbench.utils.load_model on a machine with network "
            "access and copy the model_dir here (or set source.model_dir)."
        )
    try:
        from robustbench.utils import load_model
    except Exception as error:  # the copy torchattacks ships fails on import (pkg_resources)
        raise RobustBenchUnavailableError(
            f"cannot import robustbench ({type(error).__name__}: {error}); install it with "
            "`pip install git+https://github.com/RobustBench/robustbench.git`"
        ) from error
    with _hub_offline():
        model = load_model(model_name=name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    return model.eval()


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
