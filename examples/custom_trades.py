"""Subclassing a method in user code: a TRADES variant in a few lines.

The KL term of each example is weighted by its clean mis-confidence 1 - p_y(x), the idea behind
MART (Wang et al. 2020): examples the model already gets right with confidence are regularised less.
Only ``per_example_loss`` changes; the attack, the CLI, callbacks and data are reused as they are.

Run it through the CLI (the class path is resolved from PYTHONPATH):

    PYTHONPATH=examples robustlit fit --config configs/digits/trades.yaml \\
        --model custom_trades.ConfidenceWeightedTRADES

or directly: ``python examples/custom_trades.py`` (same thing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from robustlit.losses.trades import trades_kl
from robustlit.methods import TRADES


class ConfidenceWeightedTRADES(TRADES):
    """CE(f(x), y) + β · (1 − p_y(x)) · KL(p(x) ‖ p(x'))."""

    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = self.adversarial_examples(x)
        logits_clean, logits_adv = self(x), self(x_adv)
        misconfidence = 1 - logits_clean.softmax(dim=1).gather(1, y[:, None]).squeeze(1)
        kl = trades_kl(logits_clean, logits_adv)
        return F.cross_entropy(logits_clean, y, reduction="none") + self.beta * misconfidence * kl


if __name__ == "__main__":
    from robustlit.cli import main

    sys.path.insert(0, str(Path(__file__).parent))
    config = Path(__file__).parents[1] / "configs" / "digits" / "trades.yaml"
    main(["fit", "--config", str(config), "--model", "custom_trades.ConfidenceWeightedTRADES", *sys.argv[1:]])
