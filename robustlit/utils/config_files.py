"""Several ``--config`` files: a later file's list replaces the earlier list as a whole (docs/faults.md).

jsonargparse merges a list read from a later config file with the list already parsed *element by element*
when the two have the same length: a fragment that lists ``{name: native_pgd, eps: 0.2, steps: 5}`` after a
config whose first attack had ``step_size: 0.01`` silently ran with that step size, and its callback inherited
the earlier callback's ``batch_size`` and ``every_n_epochs`` the same way. :class:`RobustArgumentParser` parses
every list a config file gives without an earlier value to merge into, so the file's list is what runs; dicts
(``model: {init_args: {beta: 1.0}}``) still override key by key. A config file that is not valid YAML is
reported with its path.

A list given on the command line (``--trainer.callbacks '[{...}]'``) was merged the same way into the list of an
earlier config file; it is passed on as a config string holding just that list (``--config '{"trainer":
{"callbacks": [...]}}'``, in its place among the arguments), so it replaces the earlier list whole too.
``--trainer.callbacks+=...`` still appends.
"""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
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


def _is_list_type(hint: Any) -> bool:
    """Whether ``hint`` is a list-like type, possibly inside ``Optional`` / ``Union``."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple) or (isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str):
        return origin is not tuple
    return origin is typing.Union and any(_is_list_type(arg) for arg in typing.get_args(hint))


def lists_as_config_strings(args: Sequence[str], list_options: set[str]) -> list[str]:
    """``args`` with every ``--option VALUE`` / ``--option=VALUE`` of a list-typed option whose VALUE is a YAML
    list replaced, in place, by ``--config '{"a": {"b": VALUE}}'`` (see the module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        option, eq, inline = token.partition("=")
        if option in list_options and (eq or i + 1 < len(args)):
            text = inline if eq else args[i + 1]
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = None
            if isinstance(value, list):
                nested: Any = value
                for key in reversed(option[2:].split(".")):
                    nested = {key: nested}
                out += ["--config", json.dumps(nested)]
                i += 1 if eq else 2
                continue
        out.append(token)
        i += 1
    return out


class RobustArgumentParser(LightningArgumentParser):
    """The CLI's parser: later config files and command-line lists replace lists whole; a YAML error names the
    file."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None, **kwargs: Any) -> Any:  # noqa: D102
        if any(getattr(a, "dest", None) == "config" for a in self._actions):
            given = list(sys.argv[1:] if args is None else args)
            options = {
                o
                for a in self._actions
                if type(a).__name__ == "ActionTypeHint" and _is_list_type(getattr(a, "_typehint", None))
                for o in a.option_strings
                if o.startswith("--")
            }
            rewritten = lists_as_config_strings(given, options)
            if rewritten != given:
                args = rewritten
        return super().parse_args(args, namespace, **kwargs)

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


__all__ = ["RobustArgumentParser", "lists_as_config_strings", "without_replaced_lists"]
