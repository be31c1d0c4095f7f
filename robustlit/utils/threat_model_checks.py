"""Radii checked against their norm's range right after a config is parsed, before anything is built.

A radius's range depends on its norm (Linf at most 1, L2 at most sqrt(d); :func:`robustlit.attacks.eps.check_eps`),
and the two are separate fields, so no single type can check them while parsing. :func:`radius_errors` walks the
parsed config for every entry that has both an ``eps`` and a ``norm`` (an attack spec, an adversarial method's
training threat model) and returns what is out of range, named by its config key; the CLI refuses those with
exit status 2 before building the model or data. (The L2 bound needs the data's shape and is checked when the
evaluation or training sees its first batch.)
"""

from __future__ import annotations

from typing import Any

from robustlit.attacks.eps import Eps, check_eps

__all__ = ["radius_errors"]


def _items(value: Any) -> list[tuple[str, Any]]:
    """The direct children of a parsed config node (a jsonargparse ``Namespace``, whose own ``items()`` flattens
    nested keys, or a dict)."""
    if type(value).__name__ == "Namespace":
        return [(str(k), v) for k, v in vars(value).items()]
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    return []


def radius_errors(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``[(config key, reason)]`` of every ``eps`` outside its ``norm``'s range (Linf: [0, 1])."""
    found: list[tuple[str, str]] = []
    items = dict(_items(config))
    if "eps" in items and items.get("norm") == "Linf" and items["eps"] is not None:
        key = f"{prefix}.eps" if prefix else "eps"
        try:
            check_eps(Eps(items["eps"]), "Linf", where=key)
        except (TypeError, ValueError) as error:
            found.append((key, str(error).removeprefix(f"{key}: ")))
    for name, value in items.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, list | tuple):
            for index, element in enumerate(value):
                found += radius_errors(element, f"{key}[{index}]")
        elif _items(value):
            found += radius_errors(value, key)
    return found
