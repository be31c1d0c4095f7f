"""Threat-model specification: which perturbations an attack may use (methods.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Norm = Literal["Linf", "L2"]


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around x, intersected with the data domain ``bounds``.

    All quantities are in pixel units of [0, 1] inputs (DESIGN contract 1). ``bounds=None`` means an
    unbounded domain (feature vectors such as the Tsipras distribution).
    """

    norm: Norm = "Linf"
    eps: float = 8 / 255
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in ("Linf", "L2"):
            raise ValueError(f"norm must be one of 'Linf', 'L2'; got {self.norm!r}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps}")
        if self.norm == "Linf" and self.bounds == (0.0, 1.0) and self.eps > 1:
            raise ValueError(f"eps for Linf on [0, 1] inputs must be in [0, 1]; got {self.eps}")
