"""A dataset wrapper whose items carry their dataset index, so a method can find per-example state by index."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset


class IndexedDataset(Dataset):
    """Wraps a dataset so that item i becomes (x, y, i): after collation a batch is (x, y, indices)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        item = self.dataset[index]
        return item[0], item[1], index
