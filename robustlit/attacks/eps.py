"""A perturbation radius as users write it: a decimal (``0.5``) or an exact fraction (``8/255``).

:class:`Eps` is a ``float`` (it computes like one) that remembers how it was written, so ``8/255`` stays
``8/255`` in metric names, tables and JSON instead of becoming ``0.03137``: the number a paper states is
the number robustlit reports (docs/evaluation.md, "What to report"). :func:`check_eps` holds each norm to
its own range, in pixel units of inputs in ``bounds``:

- ``Linf``: at most the width of the input domain (1 for [0, 1] images). A larger value is almost always a
  0-255 value by mistake (``8`` for ``8/255``).
- ``L2``: at most the diameter of the input box, sqrt(d) * width for inputs of d values (8 for the 8x8
  digits, 28 for MNIST, about 55.4 for CIFAR-10): a larger ball contains every input. L2 radii above 1
  are common (2.0 on MNIST, 3.0 on ImageNet), so this bound is checked once the data's shape is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jsonargparse.typing import register_type

__all__ = ["EIGHT_OVER_255", "Eps", "check_eps", "eps_upper_bound"]


class Eps(float):
    """A radius >= 0 in pixel units, parsed from ``8/255``, ``"0.5"`` or a number; ``str(eps)`` is the text.

    >>> Eps("8/255"), str(Eps("8/255")), float(Eps("8/255")) == 8 / 255
    (Eps('8/255'), '8/255', True)
    """

    text: str

    def __new__(cls, value: object) -> Eps:
        if isinstance(value, Eps):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(f"eps is a number or a fraction such as 8/255; got {value!r}")
        number, text = _parse(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"eps must be a finite radius >= 0 in pixel units; got {value!r}")
        eps = super().__new__(cls, number)
        eps.text = text
        return eps

    @property
    def is_fraction(self) -> bool:
        """Written as ``p/q``."""
        return "/" in self.text

    @property
    def label(self) -> str:
        """The spelling in metric names: the fraction as written (``8/255``), else four significant digits
        (``0.2``, ``0.03137``)."""
        return self.text if self.is_fraction else f"{float(self):.4g}"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Eps({self.text!r})"

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Eps, (self.text,))


def _parse(value: str | int | float) -> tuple[float, str]:
    if not isinstance(value, str):
        return float(value), repr(float(value))
    text = value.strip().replace(" ", "")
    numerator, slash, denominator = text.partition("/")
    try:
        if slash:
            top, bottom = float(numerator), float(denominator)
            if bottom <= 0:
                raise ValueError
            return top / bottom, text
        return float(text), text
    except ValueError:
        raise ValueError(f"eps must be a number or a fraction such as 8/255; got {value!r}") from None


def eps_upper_bound(norm: str, bounds: Sequence[float] | None, input_shape: Sequence[int] | None = None) -> float:
    """The largest meaningful radius: the domain's width (Linf) or its diameter sqrt(d) * width (L2, once
    ``input_shape`` -- one example's shape -- is known); ``inf`` where there is no bound."""
    width = float(bounds[1]) - float(bounds[0]) if bounds is not None else math.inf
    if norm == "Linf":
        return width
    if input_shape is None:
        return math.inf
    return math.sqrt(math.prod(input_shape)) * width


def check_eps(
    eps: float,
    norm: str,
    bounds: Sequence[float] | None = (0.0, 1.0),
    input_shape: Sequence[int] | None = None,
    where: str = "eps",
) -> None:
    """Refuse a radius outside its norm's range (see the module docstring); the message states the range."""
    upper = eps_upper_bound(norm, bounds, input_shape)
    if 0 <= float(eps) <= upper:
        return
    shown = str(eps) if isinstance(eps, Eps) else f"{float(eps):g}"
    if norm == "Linf":
        hint = " (pixel units; 8/255, not 8)" if float(eps) >= 1 else ""
        raise ValueError(f"{where}: {shown} is outside the Linf range [0, {upper:g}]{hint}")
    d = math.prod(input_shape or ())
    raise ValueError(
        f"{where}: {shown} is outside the L2 range [0, {upper:.4g}] (sqrt(d) * width: the diameter of the input "
        f"box, d = {d} values in {list(bounds) if bounds is not None else None})"
    )


register_type(Eps, serializer=lambda eps: eps.text if eps.is_fraction else float(eps), deserializer=Eps)

#: the standard CIFAR-10 Linf radius of RobustBench, exactly
EIGHT_OVER_255 = Eps("8/255")
