"""Configuration of one evaluation attack, validated at parse time (docs/contracts.md, honest metric names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveInt

from robustlit.attacks.threat_model import Norm

AttackName = Literal["fgsm", "pgd", "apgd", "apgd_t", "cw", "square", "fab", "autoattack", "native_pgd"]

# Attacks that search for a minimal perturbation rather than staying inside the eps-ball: their
# output is accepted only where it lies inside the threat model (otherwise the example counts as
# robust for that attack).
MINIMAL_NORM_ATTACKS = frozenset({"cw"})


@dataclass(frozen=True)
class AttackSpec:
    """One attack: name, norm, radius, budget. Every field appears in the logged metric name.

    Args:
        name: ``fgsm``, ``pgd`` (Linf or L2), ``apgd`` (APGD-CE), ``apgd_t``, ``cw`` (L2, counted only
            inside eps), ``square``, ``fab`` via torchattacks; ``autoattack`` = the *standard* suite
            via pyautoattack; ``native_pgd`` = robustlit's own PGD (works on unbounded feature data).
        norm: ``Linf`` or ``L2``.
        eps: radius in [0, 1] pixel units (refused outside [0, 1] at parse time; L2 radii above 1,
            ImageNet-scale, are not supported by this spec).
        steps: iterations (queries for ``square``; ignored by ``fgsm`` and ``autoattack``).
        step_size: PGD step; ``None`` = 2.5 * eps / steps (Madry et al.'s rule).
        restarts: random restarts (per-example worst case kept).
        random_start: start PGD from a random point of the ball.
    """

    name: AttackName = "pgd"
    norm: Norm = "Linf"
    eps: ClosedUnitInterval = 8 / 255
    steps: PositiveInt = 10
    step_size: NonNegativeFloat | None = None
    restarts: PositiveInt = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.eps <= 1:
            raise ValueError(f"AttackSpec.eps must be in [0, 1] (pixel units); got {self.eps}")
        if self.name == "fgsm" and self.norm != "Linf":
            raise ValueError("AttackSpec: fgsm supports norm 'Linf' only")
        if self.name == "cw" and self.norm != "L2":
            raise ValueError("AttackSpec: cw is an L2 attack; set norm: L2")

    @property
    def effective_step_size(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    @property
    def effective_steps(self) -> int:
        return 1 if self.name == "fgsm" else self.steps

    @property
    def metric_name(self) -> str:
        """E.g. ``pgd50_linf_0.2``, ``autoattack_linf_0.03137``, ``apgd_t100x2_l2_0.5``."""
        budget = "" if self.name == "autoattack" else str(self.effective_steps)
        if self.restarts > 1 and self.name != "autoattack":
            budget += f"x{self.restarts}"
        return f"{self.name}{budget}_{self.norm.lower()}_{self.eps:.4g}"
