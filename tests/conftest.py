"""Shared test fixtures: keep torch to one thread (the CI machine has 2 cores and runs pytest there)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
