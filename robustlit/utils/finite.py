"""No number from a broken model: non-finite logits stop an evaluation (docs/faults.md, docs/contracts.md).

``argmax`` of a row of NaN logits is class 0, so without a check a model with NaN weights scores the
share of class 0 as its accuracy, its robust accuracy and its certified accuracy. These helpers turn a
non-finite output into an error that names where it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

ADVICE = (
    "No metric is computed from NaN or infinite outputs. Check the weights (robustlit.load_classifier verifies "
    "a checkpoint's checksum and finiteness) and the inputs of that batch; a model that diverged in training "
    "must be retrained or resumed from an earlier checkpoint with a lower learning rate."
)


class NonFiniteOutputError(FloatingPointError):
    """A model returned NaN or infinite logits during evaluation."""


def check_finite_logits(logits: Tensor, where: str, allow_inf: bool = False) -> None:
    """Raise :class:`NonFiniteOutputError` naming ``where`` (and the rows) when ``logits`` has a NaN or an inf
    (only a NaN with ``allow_inf``, e.g. for a column of certified radii)."""
    finite = ~torch.isnan(logits) if allow_inf else torch.isfinite(logits)
    if bool(finite.all()):
        return
    rows = (~finite.reshape(len(logits), -1).all(dim=1)).nonzero().flatten().tolist() if logits.dim() else []
    raise NonFiniteOutputError(
        f"{where}: the model returned non-finite logits for {len(rows)} of {len(logits)} examples "
        f"(rows {rows[:10]}{' ...' if len(rows) > 10 else ''}). {ADVICE}"
    )


class FiniteOutputGuard:
    """A forward hook that records, without synchronising the device, whether ``model`` has returned a NaN
    or a +inf since the last :meth:`check` (attacks call the model many times per batch; one check per batch
    costs one synchronisation). A -inf is let through: models that return log-probabilities (the mixed
    classifier) may legitimately give log 0."""

    def __init__(self) -> None:
        self.flag: Tensor | None = None

    def hook(self, module: nn.Module, args: Any, output: Any) -> None:
        tensors = output if isinstance(output, tuple | list) else (output,)
        for tensor in tensors:
            if isinstance(tensor, Tensor) and tensor.is_floating_point():
                detached = tensor.detach()
                bad = (torch.isnan(detached) | torch.isposinf(detached)).any()
                self.flag = bad if self.flag is None else self.flag | bad

    def check(self, where: str) -> None:
        """Raise :class:`NonFiniteOutputError` naming ``where`` if a non-finite output was seen; then reset."""
        flag, self.flag = self.flag, None
        if flag is not None and bool(flag):
            raise NonFiniteOutputError(f"{where}: the model returned NaN or infinite logits. {ADVICE}")


@contextmanager
def guard_outputs(model: nn.Module | None) -> Iterator[FiniteOutputGuard]:
    """Watch every forward pass of ``model`` while the body runs (a no-op guard when ``model`` is None)."""
    guard = FiniteOutputGuard()
    handle = model.register_forward_hook(guard.hook) if model is not None else None
    try:
        yield guard
    finally:
        if handle is not None:
            handle.remove()


__all__ = ["FiniteOutputGuard", "NonFiniteOutputError", "check_finite_logits", "guard_outputs"]
