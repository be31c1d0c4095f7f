"""The 8x8 handwritten digits bundled with scikit-learn: real data, offline, the embedded default."""

from __future__ import annotations

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from robustlit.data.base import RobustDataModule


class DigitsDataModule(RobustDataModule):
    """1,797 images (1x8x8, pixel values 0..16 scaled to [0, 1]), 10 classes.

    A fixed, stratified split controlled by ``split_seed`` (default: 70% train, 15% val, 15% test,
    i.e. 1257 / 270 / 270 images) so that every run and every method sees the same test set.
    ``device_resident``: see :class:`~robustlit.data.base.RobustDataModule` (docs/speed.md).
    """

    num_classes = 10
    mean = (0.3,)
    std = (0.38,)

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = 256,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        device_resident: bool = False,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, seed, device_resident)
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"val_fraction and test_fraction must lie in (0, 1) with a sum < 1; got {val_fraction}, {test_fraction}"
            )
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        index = list(range(len(y)))
        rest, test = train_test_split(
            index, test_size=self.test_fraction, stratify=digits.target, random_state=self.split_seed
        )
        val_share = self.val_fraction / (1 - self.test_fraction)
        train, val = train_test_split(
            rest, test_size=val_share, stratify=digits.target[rest], random_state=self.split_seed
        )
        self.train_dataset = TensorDataset(x[train], y[train])
        self.val_dataset = TensorDataset(x[val], y[val])
        self.test_dataset = TensorDataset(x[test], y[test])
