"""Silence third-party output that says nothing about the user's run.

- Lightning's advertisement for its cloud logger (``rank_zero_info`` "Tip: ... litlogger ...").
- Lightning's note that the Trainer already has a model summary callback (the CLI's one-line summary for
  log files is that callback), that no TPU is available, and "Restoring states from the checkpoint path"
  (the next line, "Loaded model weights from ..." or "Restored all states from ...", names the file).
- torch's ``LeafSpec`` FutureWarning, raised inside Lightning's own pytree helper on every
  optimizer step; nothing in a user's code or config can act on it.

Everything else (Lightning's warnings about the user's settings, our own messages) is kept.
"""

from __future__ import annotations

import logging
import warnings

_TIP_MARKERS = (
    "litlogger",
    "LitLogger",
    "Trainer already configured with model summary callbacks",
    "TPU available: False",
    "Restoring states from the checkpoint path",
)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in _TIP_MARKERS)


def silence_third_party_noise() -> None:
    """Install the filters above (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
