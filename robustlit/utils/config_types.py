"""Number types for config arguments that jsonargparse checks at parse time (a wrong value stops the CLI
with exit status 2 and one message naming the key, before anything is built)."""

from __future__ import annotations

from jsonargparse.typing import restricted_number_type

#: a float in (0, inf): NaN and inf are refused (``sigma: .inf`` would certify every example at radius inf)
FinitePositiveFloat = restricted_number_type(
    "FinitePositiveFloat", float, [(">", 0), ("<", float("inf"))], join="and", docstring="0 < v < inf"
)

#: a probability in [0.5, 1) (the Tsipras et al. robust feature's agreement with the label)
ProbabilityAtLeastHalf = restricted_number_type(
    "ProbabilityAtLeastHalf", float, [(">=", 0.5), ("<", 1)], join="and", docstring="0.5 <= v < 1"
)

__all__ = ["FinitePositiveFloat", "ProbabilityAtLeastHalf"]
