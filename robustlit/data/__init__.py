"""DataModules yielding [0, 1] images or feature vectors (``docs/contracts.md``, pixel space)."""

from robustlit.data.base import RobustDataModule, check_in_bounds
from robustlit.data.digits import DigitsDataModule
from robustlit.data.indexed import IndexedDataset
from robustlit.data.mnist import MNISTDataModule
from robustlit.data.tradeoff_digits import TradeoffDigitsDataModule
from robustlit.data.tsipras import (
    TsiprasDataModule,
    linear_population_accuracy,
    sample_tsipras,
    theorem_2_1_bound,
)
from robustlit.data.vision import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    KMNISTDataModule,
    TorchvisionDataModule,
)

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "IndexedDataset",
    "KMNISTDataModule",
    "MNISTDataModule",
    "RobustDataModule",
    "TorchvisionDataModule",
    "TradeoffDigitsDataModule",
    "TsiprasDataModule",
    "check_in_bounds",
    "linear_population_accuracy",
    "theorem_2_1_bound",
    "sample_tsipras",
]
