"""Threat-model vocabulary shared by attacks and methods (methods.md section 1)."""

from __future__ import annotations

from typing import Literal

#: Lp norm of the perturbation ball; all radii are in [0, 1] pixel units (DESIGN contract 1).
Norm = Literal["Linf", "L2"]
