"""A normally trained SmallCNN on the 8x8 digits, shared by the audit tests (about 2 s on one thread)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlit.data import DigitsDataModule
from robustlit.models import SmallCNN


@pytest.fixture(scope="session")
def digits_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(undefended model in eval mode, 100 test images, their labels); test accuracy about 0.94."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        data = DigitsDataModule()
        data.setup()
        x_train, y_train = data.train_dataset.tensors
        x_test, y_test = data.test_dataset.tensors
        model = SmallCNN(width=16, hidden=64)
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(8):
            order = torch.randperm(len(y_train))
            for start in range(0, len(y_train), 64):
                batch = order[start : start + 64]
                optimiser.zero_grad()
                nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
                optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.9, f"the digits fixture trained to only {accuracy:.3f} test accuracy"
    return model, x_test[:100], y_test[:100]
