"""Several ``--config`` files: a later file's list replaces the earlier list as a whole (docs/faults.md).

jsonargparse merges a list read from a later config file with the list already parsed *element by element*
when the two have the same length: a fragment that lists ``{name: native_pgd, eps: 0.2, steps: 5}`` after a
config whose first attack had ``step_size: 0.01`` silently ran with that step size, and its callback inherited
the earlier callback's ``batch_size`` and ``every_n_epochs`` the same way. :class:`RobustArgumentParser` parses
every list a config file gives without an earlier value to merge into, so the file's list is what runs; dicts
(``model: {init_args: {beta: 1.0}}``) still override key by key. A config file that is not valid YAML is
reported with its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser


def without_replaced_lists(given: Mapping[str, Any], previous: Namespace) -> Namespace:
    """A copy of ``previous`` without the entries for which ``given`` (a config file's content) holds a list,
    so that jsonargparse parses those lists on their own instead of merging them into the earlier ones.

    A subclass entry given without ``init_args`` (``model: {beta: 1.0}``) is followed into ``init_args``."""
    previous = previous.clone()

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, list):
                _drop(previous, path)
            elif isinstance(value, Mapping):
                earlier = _get(previous, path)
                explicit = {"class_path", "init_args"} & set(value)
                implicit = isinstance(earlier, Namespace) and "init_args" in earlier and not explicit
                walk(value, f"{path}.init_args" if implicit else path)

    walk(given, "")
    return previous


def _get(namespace: Namespace, path: str) -> Any:
    try:
        return namespace.get(path)
    except (KeyError, AttributeError, TypeError):
        return None


def _drop(namespace: Namespace, path: str) -> None:
    parent, _, leaf = path.rpartition(".")
    holder = _get(namespace, parent) if parent else namespace
    if isinstance(holder, Namespace) and leaf in holder:
        delattr(holder, leaf)


class RobustArgumentParser(LightningArgumentParser):
    """The CLI's parser: later config files replace lists whole; a YAML error names the file."""

    def _load_config_parser_mode(
        self, content: str, path: Any = "", ext_vars: dict | None = None, prev_cfg: Namespace | None = None
    ) -> Namespace:
        from jsonargparse._loaders_dumpers import get_loader_exceptions, load_value

        try:
            given = load_value(content, path=path, ext_vars=ext_vars)
        except get_loader_exceptions() as error:
            where = f"config file {path}" if path else "the config string"
            raise TypeError(f"{where} is not valid YAML: {error}".replace("<unicode string>", str(path))) from None
        if prev_cfg is not None and isinstance(given, Mapping):
            prev_cfg = without_replaced_lists(given, prev_cfg)
        return super()._load_config_parser_mode(content, path, ext_vars, prev_cfg)


__all__ = ["RobustArgumentParser", "without_replaced_lists"]
