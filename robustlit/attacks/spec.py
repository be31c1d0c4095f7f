"""Configuration of one evaluation attack, validated at parse time (docs/contracts.md, honest metric names)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from jsonargparse.typing import NonNegativeFloat, PositiveInt, register_type

from robustlit.attacks.eps import Eps, check_eps
from robustlit.attacks.losses import LossName
from robustlit.attacks.registry import RegisteredAttack, lookup, registered_attacks, short_name
from robustlit.attacks.threat_model import Norm

#: AutoAttack's Square budget (Croce and Hein 2020, sec. 4): the default of ``AttackSpec.queries``.
DEFAULT_QUERIES = 5000
_DEFAULT_STEPS = 10


class AttackName(str):
    """The name of a registered attack, checked when a config is parsed (the error lists the registered names).

    ``package.module.attack_name`` imports ``package.module`` first (see :mod:`robustlit.attacks.registry`).
    """

    def __new__(cls, value: str) -> AttackName:
        if not isinstance(value, str):
            raise TypeError(f"an attack name is a string; got {value!r}")
        lookup(value)
        return super().__new__(cls, value)


register_type(AttackName, serializer=str, deserializer=AttackName)


@dataclass(frozen=True)
class AttackSpec:
    """One attack: name, norm, radius, budget, loss. Every field that changes the attack appears in the metric name.

    Args:
        name: a registered attack (:func:`robustlit.attacks.registry.registered_attacks`). Built in:
            ``fgsm``, ``pgd`` (Linf or L2), ``apgd`` (APGD), ``apgd_t``, ``cw`` (L2, counted only
            inside eps), ``square``, ``fab`` via torchattacks; ``autoattack`` = the *standard* suite
            via pyautoattack; ``native_pgd`` = robustlit's own PGD (keeps every success; works on
            unbounded feature data). A user attack: ``package.module.attack_name`` (the module is
            imported on parsing and registers ``attack_name`` with ``@register_attack``).
        norm: ``Linf`` or ``L2``.
        eps: radius in pixel units, a number or an exact fraction (``8/255``, kept as written in the
            metric name and the JSON: :class:`robustlit.attacks.eps.Eps`). ``Linf``: at most 1; ``L2``: at
            most sqrt(d) for inputs of d values in [0, 1], checked when the data is known (docs/evaluation.md).
        steps: iterations (ignored by ``fgsm``, ``square`` and ``autoattack``).
        step_size: PGD step; ``None`` = 2.5 * eps / steps (Madry et al.'s rule). Another value appears in the
            metric name (``_step0.003``). Only for attacks that take it (``pgd``, ``native_pgd``).
        restarts: random restarts; per example, any restart that succeeds counts.
        random_start: start PGD from a random point of the ball; ``false`` appears in the metric name
            (``_norandstart``). Only for attacks that take it (``pgd``, ``native_pgd``).
        loss: the attack objective, ``ce``, ``margin`` (Carlini and Wagner 2017) or ``dlr`` (Croce
            and Hein 2020, eq. 4; >= 3 classes), for the attacks that take one (``native_pgd``: all
            three; ``apgd``: ce, dlr; ``pgd``, ``fgsm``: ce). ``None`` = the attack's default:
            ``margin`` for ``native_pgd`` -- it does not saturate when logits are large, where the
            float32 cross-entropy gradient underflows to zero (unbounded feature data, e.g. the
            Tsipras distribution) -- and ``ce`` for the others. The metric name shows the loss when
            it is not ``ce`` (``native_pgd20_margin_linf_0.2``).
        eot_samples: expectation over transformation (Athalye, Carlini and Wagner 2018, sec. 4.3):
            average the input gradient over this many forward passes, for randomised models
            (``native_pgd``, ``pgd`` Linf, ``apgd``, ``apgd_t``). Shown as ``eot<k>`` when > 1.
        queries: query budget of query-based attacks (``square``); AutoAttack's 5000 by default.
        precision: ``fp32`` (default): the attack runs in float32 even when the Trainer trains in
            ``bf16-mixed``, so reported numbers do not depend on reduced-precision gradients; ``bf16``
            runs the attack under bfloat16 autocast (faster on accelerators) and the metric name says
            so (``pgd50_bf16_linf_0.2``). Success is still judged by the callback on the float32
            model (docs/speed.md).
    """

    name: AttackName = "pgd"
    norm: Norm = "Linf"
    eps: Eps = Eps("8/255")
    steps: PositiveInt = _DEFAULT_STEPS
    step_size: NonNegativeFloat | None = None
    restarts: PositiveInt = 1
    random_start: bool = True
    loss: LossName | None = None
    eot_samples: PositiveInt = 1
    queries: PositiveInt = DEFAULT_QUERIES
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))  # a plain str in checkpoints (weights_only loading)
        object.__setattr__(self, "eps", Eps(self.eps))
        check_eps(self.eps, self.norm, where="AttackSpec.eps")  # Linf: [0, 1]; L2's sqrt(d) when the data is known
        entry = self.registered
        name = self.attack_name
        if self.norm not in entry.norms:
            raise ValueError(f"AttackSpec: {name} supports norm {' or '.join(map(repr, entry.norms))} only")
        if self.loss is not None and self.loss not in entry.losses:
            offers = [n for n in registered_attacks() if self.loss in lookup(n).losses]
            own = f"accepts loss {', '.join(map(repr, entry.losses))} only" if entry.losses else "has its own objective"
            raise ValueError(
                f"AttackSpec: {name} {own}; loss {self.loss!r} is offered by {offers} "
                "(e.g. name: native_pgd, which takes ce, margin and dlr)."
            )
        if self.eot_samples > 1 and not entry.eot:
            offers = [n for n in registered_attacks() if lookup(n).eot]
            raise ValueError(f"AttackSpec: {name} does not average gradients (eot_samples > 1); use one of {offers}")
        if self.queries != DEFAULT_QUERIES and entry.budget != "queries":
            raise ValueError(f"AttackSpec: queries is the budget of query-based attacks (square); {name} uses steps")
        if entry.budget == "queries" and self.steps != _DEFAULT_STEPS:
            raise ValueError(
                f"AttackSpec: {name} is budgeted in queries (queries: {self.queries}, AutoAttack's default 5000); "
                "steps is not used: set queries instead."
            )
        if not entry.takes_step_size and (self.step_size is not None or not self.random_start):
            offers = [n for n in registered_attacks() if lookup(n).takes_step_size]
            raise ValueError(
                f"AttackSpec: {name} chooses its own step size and starting point; step_size and random_start: false "
                f"are settings of {offers}. Remove them (they would not run, yet the config would say they did)."
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"AttackSpec.precision must be 'fp32' or 'bf16'; got {self.precision!r}")
        if entry.check is not None:
            entry.check(self)

    @property
    def registered(self) -> RegisteredAttack:
        """The registry entry of ``name`` (imports ``package.module`` for a dotted user attack)."""
        return lookup(self.name)

    @property
    def attack_name(self) -> str:
        """The registered name (``my_attack`` for ``name: package.module.my_attack``)."""
        return short_name(self.name)

    @property
    def effective_loss(self) -> str | None:
        """The loss the attack optimises (``None``: the attack's own objective)."""
        entry = self.registered
        if not entry.losses:
            return None
        return self.loss if self.loss is not None else entry.default_loss

    @property
    def default_step_size(self) -> float:
        """Madry et al.'s rule, 2.5 * eps / steps: the step size when ``step_size`` is ``None``."""
        return 2.5 * self.eps / self.steps

    @property
    def effective_step_size(self) -> float:
        return self.step_size if self.step_size is not None else self.default_step_size

    @property
    def custom_step_size(self) -> bool:
        """Whether a step size other than :attr:`default_step_size` runs (then the metric name says so)."""
        if self.step_size is None or not self.registered.takes_step_size:
            return False
        return not math.isclose(self.step_size, self.default_step_size, rel_tol=1e-6, abs_tol=1e-12)

    @property
    def effective_steps(self) -> int:
        return 1 if self.name == "fgsm" else self.steps

    @property
    def metric_name(self) -> str:
        """E.g. ``pgd50_linf_0.2``, ``autoattack_linf_0.03137``, ``apgd_t100x2_l2_0.5``,
        ``native_pgd20_margin_linf_0.2``, ``square5000_linf_0.2``, ``native_pgd20_margin_eot8_linf_0.5``,
        ``pgd50_bf16_linf_0.2``, ``autoattack_linf_8/255`` (a radius written as a fraction keeps it),
        ``pgd20_step0.003_linf_0.03137`` (a step size other than 2.5 * eps / steps),
        ``native_pgd1_step0.3795_norandstart_margin_linf_0.3795`` (no random start). Every setting that differs
        from the attack's default is in the name, so two numbers with one name were computed the same way."""
        entry = self.registered
        budget = {"steps": str(self.effective_steps), "queries": str(self.queries), "none": ""}[entry.budget]
        if self.restarts > 1 and entry.budget != "none":
            budget += f"x{self.restarts}"
        if self.custom_step_size:
            budget += f"_step{self.step_size:.4g}"
        if entry.takes_step_size and not self.random_start:
            budget += "_norandstart"
        loss = self.effective_loss
        if loss is not None and loss != "ce":
            budget += f"_{loss}"
        if self.eot_samples > 1:
            budget += f"_eot{self.eot_samples}"
        if self.precision != "fp32":
            budget += f"_{self.precision}"
        return f"{self.attack_name}{budget}_{self.norm.lower()}_{Eps(self.eps).label}"
