"""Threat-model vocabulary shared by attacks and methods (docs/adversarial_training.md)."""

from __future__ import annotations

from typing import Literal

#: Lp norm of the perturbation ball; all radii are in [0, 1] pixel units (docs/contracts.md, pixel space).
Norm = Literal["Linf", "L2"]
