"""Files written with the user's umask, as ``open()`` creates them.

Some writers create their files with mode 0600 whatever the umask (safetensors' ``save_file`` does), so a
weights file meant to be shared (an export, a model-hub folder) would be readable by its owner only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["current_umask", "with_user_umask"]


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def with_user_umask(path: str | os.PathLike[str]) -> Path:
    """Give ``path`` the mode a plain ``open(path, "w")`` would have given it: 0666 minus the umask."""
    path = Path(path)
    path.chmod(0o666 & ~current_umask())
    return path
