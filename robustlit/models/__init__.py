"""Models: all map [0, 1] inputs to logits; normalisation is a layer inside (docs/contracts.md)."""

from robustlit.models.linear import LinearClassifier
from robustlit.models.mlp import MLP
from robustlit.models.normalize import Normalize
from robustlit.models.preact_resnet import PreActResNet18
from robustlit.models.small_cnn import SmallCNN
from robustlit.models.wide_resnet import WideResNet
from robustlit.models.wong_mnist import WongMNISTNet

__all__ = ["MLP", "LinearClassifier", "Normalize", "PreActResNet18", "SmallCNN", "WideResNet", "WongMNISTNet"]
