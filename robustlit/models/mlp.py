"""A fully connected ReLU network on the flattened pixels (the trade-off digits' backbone; docs/tradeoff.md)."""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from torch import Tensor, nn


class MLP(nn.Module):
    """``Linear -> ReLU`` for each width in ``hidden``, then a linear layer to ``num_classes`` logits.

    Every pixel has its own weights, so a pixel-level pattern (the non-robust features of Ilyas et al. 2019,
    as in :class:`~robustlit.data.TradeoffDigitsDataModule`) is a linear feature for it, where a small CNN
    with pooling has to assemble it from local filters. Inputs of any shape are flattened after the batch
    dimension; ``net`` is the ``nn.Sequential`` (``net.2``, ``net.4``, ... are the ReLU outputs, for
    feature taps such as the mixed classifier's).
    """

    def __init__(
        self, in_features: PositiveInt = 64, num_classes: PositiveInt = 10, hidden: list[PositiveInt] | None = None
    ) -> None:
        super().__init__()
        widths = [256, 256] if hidden is None else list(hidden)
        if any(int(w) != w or w < 1 for w in widths):
            raise ValueError(f"MLP: hidden widths must be positive integers; got {widths}")
        layers: list[nn.Module] = [nn.Flatten()]
        previous = int(in_features)
        for width in widths:
            layers += [nn.Linear(previous, int(width)), nn.ReLU()]
            previous = int(width)
        layers.append(nn.Linear(previous, int(num_classes)))
        self.net = nn.Sequential(*layers)
        self.in_features = int(in_features)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        if flat.shape[1] != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} input values per example (in_features); got input of shape "
                f"{tuple(x.shape)}"
            )
        return self.net(flat)
