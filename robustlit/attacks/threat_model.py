"""The threat model of an inner maximisation: one value instead of six loose keywords.

A :class:`ThreatModel` is the set B_ε(x) ∩ bounds of allowed inputs (Lp ball of radius ``eps`` in
[0, 1] pixel units, clipped to the input domain) together with the projected-gradient schedule that
searches it (``step_size``, ``steps``, ``random_start``). Every training-time inner maximisation of
robustlit receives one such value and calls :meth:`ThreatModel.maximize` (Madry et al. 2018, eq. 2.1:
max_{δ ∈ S} L(θ, x + δ, y)). An evaluation attack is configured by the flat fields of
:class:`robustlit.attacks.spec.AttackSpec`, which builds and validates its ThreatModel
(:meth:`~robustlit.attacks.spec.AttackSpec.threat_model`); ``native_pgd`` runs it through :meth:`ThreatModel.attack`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from robustlit.attacks.ball import Bounds, Norm, RandomStart
from robustlit.attacks.eps import Eps, check_eps
from robustlit.attacks.pgd import Probe, Recorder, pgd_attack

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor, nn

    from robustlit.attacks.keep import KeepRule, SuccessFn

__all__ = ["Bounds", "Norm", "RandomStart", "ThreatModel"]


@dataclass(frozen=True)
class ThreatModel:
    """B_ε(x) ∩ bounds and the PGD schedule that maximises a per-example loss over it.

    Args:
        norm: ``Linf`` or ``L2``.
        eps: radius ε ≥ 0 in pixel units, a number or a fraction (``8/255``, :class:`~robustlit.attacks.eps.Eps`);
            for ``Linf`` on a bounded domain at most its width (1 for [0, 1] images: a larger radius is
            almost always a 0-255 value by mistake); for ``L2`` at most the domain's diameter sqrt(d) * width,
            checked on the first batch (:func:`~robustlit.attacks.eps.check_eps`).
        step_size: PGD step a ≥ 0.
        steps: number of PGD iterations K ≥ 1.
        random_start: ``uniform``, ``gaussian`` or ``none``.
        bounds: input domain (``None``: unbounded feature vectors).
    """

    norm: Norm = "Linf"
    eps: Eps = Eps("8/255")
    step_size: float = 2 / 255
    steps: int = 10
    random_start: RandomStart = "uniform"
    bounds: Bounds = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in get_args(Norm):
            raise ValueError(f"norm must be one of {get_args(Norm)}; got {self.norm!r}")
        if self.random_start not in get_args(RandomStart):
            raise ValueError(f"random_start must be one of {get_args(RandomStart)}; got {self.random_start!r}")
        if self.bounds is not None:
            low, high = (float(b) for b in self.bounds)
            if not low < high:
                raise ValueError(f"bounds must be (low, high) with low < high; got {self.bounds}")
            object.__setattr__(self, "bounds", (low, high))
        eps = Eps(self.eps) if isinstance(self.eps, str) else self.eps  # "8/255"
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps}")
        object.__setattr__(self, "eps", Eps(eps))
        check_eps(self.eps, self.norm, self.bounds)
        if not self.step_size >= 0:
            raise ValueError(f"step_size must be >= 0; got {self.step_size}")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1; got {self.steps}")

    def attack(
        self,
        model: nn.Module,
        x: Tensor,
        loss_fn: Callable[[Tensor], Tensor],
        *,
        success: Tensor | SuccessFn | None = None,
        restarts: int = 1,
        eot_samples: int = 1,
        train_mode: bool = False,
        keep: KeepRule | None = None,
        recorder: Recorder | None = None,
        probe: Probe | None = None,
    ) -> Tensor:
        """Projected-gradient search of this set with this schedule: :func:`robustlit.attacks.pgd.pgd_attack`.

        ``success`` (labels or logits -> bool) keeps every success (evaluation); without it the last iterate
        (or, over ``restarts``, the highest final loss) comes back. ``keep``, ``recorder`` and ``probe`` are the
        engine's (see :func:`~robustlit.attacks.pgd.pgd_attack`). Returns a detached tensor.
        """
        if self.norm == "L2":  # the L2 radius's range depends on the input size (sqrt(d) * width)
            check_eps(self.eps, self.norm, self.bounds, tuple(x.shape[1:]))
        return pgd_attack(
            model,
            x,
            loss_fn,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            norm=self.norm,
            random_start_kind=self.random_start,
            bounds=self.bounds,
            restarts=restarts,
            train_mode=train_mode,
            success=success,
            eot_samples=eot_samples,
            keep=keep,
            recorder=recorder,
            probe=probe,
        )

    def maximize(
        self, model: nn.Module, x: Tensor, loss_fn: Callable[[Tensor], Tensor], train_mode: bool = False
    ) -> Tensor:
        """x' ≈ argmax_{x' ∈ B_ε(x) ∩ bounds} loss_fn(model(x')) by K projected steps from the random start.

        ``loss_fn`` maps logits (N, K) to the per-example loss (N,) to ascend; the model runs under
        :func:`robustlit.attacks.eval_mode.attack_mode` (eval mode unless ``train_mode``, no parameter
        gradients). Returns a detached tensor (the last iterate: :meth:`attack` without ``success``).
        """
        return self.attack(model, x, loss_fn, train_mode=train_mode)
