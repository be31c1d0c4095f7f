"""Build an architecture from its import path, the way the CLI builds a ``backbone`` (docs/interop.md).

Shared by the export loader (:mod:`robustlit.interop.exported`) and the external-model sources
(:mod:`robustlit.interop.source`); a leaf, so neither needs the other.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def build_architecture(class_path: str, init_args: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate ``class_path(**init_args)`` through jsonargparse (types checked, nested
    ``class_path`` arguments built), the way the CLI builds a ``backbone``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(nn.Module, "model", fail_untyped=False)
    config = parser.parse_object({"model": {"class_path": class_path, "init_args": dict(init_args or {})}})
    return parser.instantiate_classes(config).model
