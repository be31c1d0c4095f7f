"""Versions of the libraries a result depends on, recorded next to every exported number."""

from __future__ import annotations

import platform
from importlib import metadata

from robustlit.version import __version__

LIBRARIES = ("robustlit", "torch", "lightning", "torchattacks", "pyautoattack", "safetensors", "numpy")


def library_versions() -> dict[str, str]:
    """``{"python": ..., "torch": ..., ...}``; a library that is not installed is left out."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "robustlit":
                versions[name] = __version__
    return versions
