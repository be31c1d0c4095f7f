"""Subclassing a method in user code: a reweighted TRADES in a few lines.

The KL term of each example is weighted by its clean mis-confidence 1 - p_y(x), the idea behind
MART (Wang et al. 2020): examples the model already gets right with confidence are regularised less.
Only the weighting hook ``robust_term_weights`` changes; TRADES' terms (Zhang et al. 2019, eq. 5), its
attack, the CLI, callbacks and data are reused as they are.

Run it through the CLI (the class path is resolved from PYTHONPATH):

    PYTHONPATH=examples robustlit fit --config configs/digits/trades.yaml \\
        --model custom_trades.ConfidenceWeightedTRADES

or directly: ``python examples/custom_trades.py`` (same thing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import Tensor

from robustlit.losses import LossTerms
from robustlit.methods import TRADES


class ConfidenceWeightedTRADES(TRADES):
    """CE(f(x), y) + β · (1 − p_y(x)) · KL(p(x) ‖ p(x')): the TRADES KL term weighted per example."""

    def robust_term_weights(self, terms: LossTerms) -> Tensor:
        return 1 - terms.logits_clean.softmax(dim=1).gather(1, terms.y[:, None]).squeeze(1)


if __name__ == "__main__":
    from robustlit.cli import main

    sys.path.insert(0, str(Path(__file__).parent))
    config = Path(__file__).parents[1] / "configs" / "digits" / "trades.yaml"
    main(["fit", "--config", str(config), "--model", "custom_trades.ConfidenceWeightedTRADES", *sys.argv[1:]])
