"""The threat model of an inner maximisation: one value instead of six loose keywords.

A :class:`ThreatModel` is the set B_ε(x) ∩ bounds of allowed inputs (Lp ball of radius ``eps`` in
[0, 1] pixel units, clipped to the input domain) together with the projected-gradient schedule that
searches it (``step_size``, ``steps``, ``random_start``). Every training-time inner maximisation of
robustlit receives one such value and calls :meth:`ThreatModel.maximize` (Madry et al. 2018, eq. 2.1:
max_{δ ∈ S} L(θ, x + δ, y)). Evaluation attacks are configured by
:class:`robustlit.attacks.spec.AttackSpec` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from robustlit.attacks.eps import Eps, check_eps

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor, nn

#: Lp norm of the perturbation ball; all radii are in [0, 1] pixel units (docs/contracts.md).
Norm = Literal["Linf", "L2"]
#: Initial point of the search: uniform in the ball (Madry), x + 0.001 N(0, I) (TRADES), or x itself.
RandomStart = Literal["uniform", "gaussian", "none"]


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
    bounds: tuple[float, float] | None = (0.0, 1.0)

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

    def maximize(
        self, model: nn.Module, x: Tensor, loss_fn: Callable[[Tensor], Tensor], train_mode: bool = False
    ) -> Tensor:
        """x' ≈ argmax_{x' ∈ B_ε(x) ∩ bounds} loss_fn(model(x')) by K projected steps from the random start.

        ``loss_fn`` maps logits (N, K) to the per-example loss (N,) to ascend; the model runs under
        :func:`robustlit.attacks.eval_mode.attack_mode` (eval mode unless ``train_mode``, no parameter
        gradients). Returns a detached tensor.
        """
        from robustlit.attacks.pgd import pgd_attack  # pgd imports this module's Norm

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
            train_mode=train_mode,
        )
