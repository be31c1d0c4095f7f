"""Noise-level functions sigma(x) for (input-dependent) randomized smoothing (docs/smoothing.md).

A sigma function maps a batch x of shape (N, ...) in pixel space to sigma(x) of shape (N,) and declares
its semi-elasticity r: |log sigma(x) - log sigma(x')| <= r ||x - x'||_2 for all x, x'. The certifier
trusts this constant (it sets how far sigma may drift within the certified ball), so a user-defined
sigma function must state a true upper bound.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.utils.config_types import FinitePositiveFloat

__all__ = ["ConstantSigma", "KNNSigma", "SigmaFunction"]


class SigmaFunction(nn.Module):
    """Interface for sigma(x): ``forward(x: (N, ...)) -> (N,)`` positive, plus ``semi_elasticity``.

    Subclass it for your own sigma(x), set ``self.semi_elasticity`` to a proven upper bound on the
    Lipschitz constant of log sigma w.r.t. the l2 norm in pixel space (Suekenik et al. 2022, Def. 1),
    and implement ``forward``. ``semi_elasticity == 0`` means constant sigma (Cohen et al. certificate);
    anything larger is certified with the input-dependent radius.
    """

    semi_elasticity: float

    def __init__(self, semi_elasticity: float) -> None:
        super().__init__()
        if semi_elasticity < 0:
            raise ValueError(f"semi_elasticity must be >= 0, got {semi_elasticity}")
        self.semi_elasticity = float(semi_elasticity)

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class ConstantSigma(SigmaFunction):
    """sigma(x) = sigma for every input (Cohen et al. 2019); semi-elasticity 0."""

    def __init__(self, sigma: FinitePositiveFloat) -> None:
        super().__init__(semi_elasticity=0.0)
        if not 0 < sigma < float("inf"):  # also refuses NaN
            raise ValueError(f"sigma must be positive and finite, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return torch.full((x.shape[0],), self.sigma, dtype=dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class KNNSigma(SigmaFunction):
    """sigma(x) = sigma_b exp(r (d_k(x) - m)), d_k = mean l2 distance to the k nearest reference points.

    Suekenik et al. 2022 (docs/smoothing.md): d_k is 1-Lipschitz, so sigma is r-semi-elastic
    (``semi_elasticity = rate``). Inputs and reference points are flattened; distances are computed
    in chunks with ``torch.cdist`` (exact, not the matmul shortcut) keeping a running top-k, so memory
    is O(query_chunk * reference_chunk).

    Args:
        sigma_base: sigma_b > 0.
        rate: r >= 0.
        reference: (M, ...) reference points (e.g. training images in [0, 1]), stored as a buffer.
        k: number of neighbours (20 in the paper), k <= M.
        normaliser: m (5 for CIFAR-10, 1.5 for MNIST in the paper).
        query_chunk, reference_chunk: chunk sizes for the distance computation.
    """

    def __init__(
        self,
        sigma_base: float,
        rate: float,
        reference: Tensor,
        k: int = 20,
        normaliser: float = 0.0,
        query_chunk: int = 256,
        reference_chunk: int = 4096,
    ) -> None:
        super().__init__(semi_elasticity=rate)
        if not 0 < sigma_base < float("inf"):  # also refuses NaN
            raise ValueError(f"sigma_base must be positive and finite, got {sigma_base}")
        if reference.dim() < 2:
            raise ValueError(f"reference must have shape (M, ...), got {tuple(reference.shape)}")
        if not 1 <= k <= reference.shape[0]:
            raise ValueError(f"k must lie in [1, {reference.shape[0]}] (number of reference points), got {k}")
        self.sigma_base = float(sigma_base)
        self.rate = float(rate)
        self.k = int(k)
        self.normaliser = float(normaliser)
        self.query_chunk = int(query_chunk)
        self.reference_chunk = int(reference_chunk)
        self.register_buffer("reference", reference.detach().flatten(1).clone())

    def mean_knn_distance(self, x: Tensor) -> Tensor:
        """d_k(x): mean l2 distance from each row of x (N, ...) to its k nearest reference points."""
        ref = self.reference
        flat = x.flatten(1).to(device=ref.device, dtype=ref.dtype)
        if flat.shape[1] != ref.shape[1]:
            raise ValueError(f"inputs have {flat.shape[1]} features but the reference points have {ref.shape[1]}")
        out = []
        for q in flat.split(self.query_chunk):
            best = torch.full((q.shape[0], 0), float("inf"), dtype=ref.dtype, device=ref.device)
            for r in ref.split(self.reference_chunk):
                d = torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")
                both = torch.cat([best, d], dim=1)
                best = both.topk(min(self.k, both.shape[1]), dim=1, largest=False).values
            out.append(best.mean(dim=1))
        return torch.cat(out).to(x.device)

    def forward(self, x: Tensor) -> Tensor:
        return self.sigma_base * torch.exp(self.rate * (self.mean_knn_distance(x) - self.normaliser))

    def extra_repr(self) -> str:
        return (
            f"sigma_base={self.sigma_base}, rate={self.rate}, k={self.k}, normaliser={self.normaliser}, "
            f"reference={tuple(self.reference.shape)}"
        )
