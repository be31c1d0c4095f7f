"""Old import path of the mixed classifier's Lightning module, kept so that configs and checkpoints
that name ``robustlit.methods.mixed.MixedClassifierModule`` still load. It lives in
:mod:`robustlit.mixed.module`.
"""

from robustlit.mixed.module import MIXED_DIGITS_COMMAND, MixedClassifierModule

__all__ = ["MIXED_DIGITS_COMMAND", "MixedClassifierModule"]
