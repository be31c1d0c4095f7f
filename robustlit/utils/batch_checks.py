"""Validation of the examples an evaluation reads (docs/contracts.md: pixel space, labels 0..K-1).

Every check names the culprit (dataset indices, the value found) so that a corrupt image or a wrong label
is reported as what it is, not blamed on the attack that later meets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _at(mask: Tensor, indices: Sequence[int]) -> str:
    rows = mask.nonzero().flatten().tolist()
    named = [indices[r] for r in rows[:10]]
    return f"dataset indices {named}{' ...' if len(rows) > 10 else ''} ({len(rows)} of {len(indices)})"


def check_evaluation_batch(
    x: Tensor,
    y: Tensor,
    indices: Sequence[int],
    bounds: tuple[float, float] | None,
    num_classes: int | None,
    where: str,
) -> None:
    """Raise ValueError unless ``x`` (B, ...) is finite and within ``bounds`` and ``y`` (B,) holds integer
    labels in 0..num_classes-1."""
    if x.dim() < 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] != len(indices):
        raise ValueError(
            f"{where}: a batch must be inputs (B, ...) and labels (B,) for B={len(indices)} examples; got inputs "
            f"{tuple(x.shape)} and labels {tuple(y.shape)} (dataset indices {list(indices)[:10]}). The dataset's "
            "items must be (input tensor, integer label)."
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{where}: labels must be integer class indices; got dtype {y.dtype} ({_at(y == y, indices)})")
    flat = x.reshape(len(x), -1)
    finite = torch.isfinite(flat).all(dim=1)
    if not bool(finite.all()):
        raise ValueError(
            f"{where}: NaN or infinite input values at {_at(~finite, indices)}. The input data are broken (a corrupt "
            "file or a transform that divides by zero): fix or drop these examples; this is not the model's or the "
            "attack's fault."
        )
    if bounds is not None and flat.numel():
        low, high = bounds
        outside = (flat < low).any(dim=1) | (flat > high).any(dim=1)
        if bool(outside.any()):
            raise ValueError(
                f"{where}: inputs in [{flat.min().item():.4g}, {flat.max().item():.4g}], outside {list(bounds)}, at "
                f"{_at(outside, indices)}. robustlit works in pixel space: do not normalise in the data transforms; "
                "normalisation is the first layer of the model (robustlit.models.Normalize), so eps and radii stay "
                "in pixel units."
            )
    if num_classes is not None:
        wrong = (y < 0) | (y >= num_classes)
        if bool(wrong.any()):
            raise ValueError(
                f"{where}: labels {y[wrong].unique().tolist()[:10]} outside 0..{num_classes - 1} at "
                f"{_at(wrong, indices)}. Check the DataModule's num_classes and its label encoding."
            )


def batch_is_sound(x: Tensor, y: Tensor | None, num_classes: int | None) -> bool:
    """One cheap test (a single synchronisation): finite inputs and, when given, labels in 0..num_classes-1."""
    ok = torch.isfinite(x).all()
    if y is not None and num_classes is not None and not y.is_floating_point() and y.dim() == 1:
        ok = ok & ((y >= 0) & (y < num_classes)).all()
    return bool(ok)


def dataset_indices(loader: object, batch_idx: int, size: int) -> list[int]:
    """The dataset indices of batch ``batch_idx`` of ``loader`` (a DataLoader over a sampler with a
    ``batch_size``, or robustlit's device-resident loader); positions ``batch_idx * size + row`` when the sampler
    cannot be read. Only called when a batch is refused, so drawing the sampler's order again costs nothing."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None) or getattr(loader, "sampler", None)
    batch_size = getattr(batch_sampler, "batch_size", None) or getattr(loader, "batch_size", None)
    if sampler is not None and batch_size:
        try:
            order = list(iter(sampler))
            chosen = order[batch_idx * batch_size : batch_idx * batch_size + size]
            if len(chosen) == size:  # EpochShuffle yields (epoch, index) keys
                return [int(i[-1]) if isinstance(i, tuple) else int(i) for i in chosen]
        except TypeError:
            pass
    return list(range(batch_idx * size, batch_idx * size + size))


__all__ = ["batch_is_sound", "check_evaluation_batch", "dataset_indices"]
