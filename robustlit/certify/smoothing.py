"""Monte-Carlo PREDICT and CERTIFY of a Gaussian-smoothed classifier (Cohen et al. 2019, Section 3),
with input-dependent sigma certified by Suekenik et al.'s radius (docs/smoothing.md; docs/contracts.md).

Noise is added in [0, 1] pixel space to the model's input (normalisation is the model's first layer, so
radii are in pixel units); noisy inputs are not clipped; the base model runs in eval mode under no_grad.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.certify.bounds import binomial_abstain_pvalue, clopper_pearson_lower
from robustlit.certify.radius import cohen_radius, input_dependent_radius
from robustlit.certify.sigma import ConstantSigma, SigmaFunction

__all__ = ["ABSTAIN", "CertifyResult", "NonFiniteLogitsError", "SmoothedClassifier", "check_sampling_args"]

ABSTAIN = -1


class NonFiniteLogitsError(FloatingPointError):
    """The base model returned NaN or infinite logits on noisy inputs: no vote may be counted from them."""


def check_sampling_args(failure_prob: float, **counts: int) -> None:
    """Raise ValueError unless ``failure_prob`` lies in (0, 1) and every count is an integer >= 1."""
    if isinstance(failure_prob, bool) or not 0.0 < float(failure_prob) < 1.0:
        raise ValueError(f"the failure probability (alpha) must lie in (0, 1), e.g. 0.001; got {failure_prob!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


@dataclass(frozen=True)
class CertifyResult:
    """Outcome of CERTIFY for one input.

    Attributes:
        prediction: certified class, or ``ABSTAIN`` (-1).
        radius: certified l2 radius in pixel units (0 when abstaining).
        p_a_lower: one-sided Clopper-Pearson lower bound on p_A from the estimation samples.
        sigma: sigma(x) at the input.
        count_a: estimation votes for the selected class.
        n: number of estimation samples.
        radius_method: ``"cohen"`` or ``"input_dependent"``.
        counts_selection: (K,) class counts of the n0 selection samples.
        counts: (K,) class counts of the n estimation samples.
    """

    prediction: int
    radius: float
    p_a_lower: float
    sigma: float
    count_a: int
    n: int
    radius_method: str
    counts_selection: Tensor = field(repr=False)
    counts: Tensor = field(repr=False)

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode; restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _chunks(total: int, batch_size: int) -> list[int]:
    """The sizes in which ``_counts`` draws ``total`` samples: full batches, then the remainder."""
    if total < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1, got {total}, {batch_size}")
    return [batch_size] * (total // batch_size) + ([total % batch_size] if total % batch_size else [])


class SmoothedClassifier:
    """g(x) = argmax_c P[f(x + sigma(x) eps) = c], eps ~ N(0, I) (Cohen et al. 2019; Suekenik et al. 2022).

    Args:
        base_model: f, mapping (B, ...) inputs to (B, K) logits. Sampling runs on its device.
        sigma: a ``SigmaFunction`` or a float (``ConstantSigma``).
        input_bounds: the pixel range that inputs must lie in (docs/contracts.md, pixel space), or None for feature
            vectors. An input outside it raises ValueError.
        radius_kwargs: extra keyword arguments for ``input_dependent_radius`` (grid sizes).
    """

    def __init__(
        self,
        base_model: nn.Module,
        sigma: SigmaFunction | float,
        input_bounds: Bounds = (0.0, 1.0),
        radius_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.base_model = base_model
        self.sigma_fn = sigma if isinstance(sigma, SigmaFunction) else ConstantSigma(float(sigma))
        self.input_bounds = input_bounds
        self.radius_kwargs = dict(radius_kwargs or {})

    @property
    def device(self) -> torch.device | None:
        """Device of the base model's first parameter or buffer (None for a model without state)."""
        for tensor in itertools.chain(self.base_model.parameters(), self.base_model.buffers()):
            return tensor.device
        return None

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError if x is not finite or lies outside ``input_bounds`` (e.g. a normalised image)."""
        if not bool(torch.isfinite(x).all()):
            raise ValueError("smoothing input contains NaN or infinite values")
        if self.input_bounds is None:
            return
        low, high = self.input_bounds
        x_min, x_max = float(x.min()), float(x.max())
        if x_min < low or x_max > high:
            raise ValueError(
                f"smoothing input has values in [{x_min:.4g}, {x_max:.4g}], "
                f"outside input_bounds={self.input_bounds}. "
                "Noise levels and radii are in pixel units: pass un-normalised images in [0, 1] and put the "
                "normalisation inside the model as its first layer; for feature vectors construct "
                "SmoothedClassifier(..., input_bounds=None)."
            )

    def sigma_at(self, x: Tensor) -> float:
        """sigma(x) for a single example x (no batch dimension)."""
        return self._prepare(x)[1]

    def sample_counts(
        self, x: Tensor, num_samples: int, batch_size: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Class counts (K,) of f(x + sigma(x) eps) over ``num_samples`` draws, ``batch_size`` at a time.

        x is a single example without batch dimension, e.g. (C, H, W) or (D,). Noise is drawn on the
        model's device (or on the generator's device, then moved); counts are accumulated per batch,
        so memory does not depend on ``num_samples``. Returns a CPU LongTensor.
        """
        x_dev, sigma = self._prepare(x)
        return self._counts(x_dev, sigma, num_samples, batch_size, generator)

    def predict(
        self, x: Tensor, n: int, alpha: float, batch_size: int, generator: torch.Generator | None = None
    ) -> int:
        """Cohen et al.'s PREDICT: top class if the binomial test of the top two counts has p <= alpha,
        else ``ABSTAIN`` (-1). Returns a class other than g(x) with probability at most alpha."""
        check_sampling_args(alpha, n=n, batch_size=batch_size)
        x_dev, sigma = self._prepare(x)
        counts = self._counts(x_dev, sigma, n, batch_size, generator)
        top = torch.topk(counts, min(2, counts.numel()))
        n1 = int(top.values[0])
        n2 = int(top.values[1]) if counts.numel() > 1 else 0
        if binomial_abstain_pvalue(n1, n2) > alpha:
            return ABSTAIN
        return int(top.indices[0])

    def certify(
        self,
        x: Tensor,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> CertifyResult:
        """Cohen et al.'s CERTIFY: select c_A on n0 samples, bound p_A on n fresh samples (Clopper-Pearson,
        level 1 - alpha), abstain when p_A_lower <= 1/2, else radius sigma Phi^-1(p_A_lower) for constant
        sigma or Suekenik et al.'s input-dependent radius when ``sigma_fn.semi_elasticity > 0``."""
        check_sampling_args(alpha, n0=n0, n=n, batch_size=batch_size)
        x_dev, sigma = self._prepare(x)
        # Selection and estimation use independent draws (the generator advances between them).
        counts0 = self._counts(x_dev, sigma, n0, batch_size, generator)
        counts = self._counts(x_dev, sigma, n, batch_size, generator)
        return self._certificate(counts0, counts, n, alpha, sigma, x.numel())

    def _certificate(
        self, counts0: Tensor, counts: Tensor, n: int, alpha: float, sigma: float, dim: int
    ) -> CertifyResult:
        """The end of CERTIFY from the selection and estimation counts."""
        c_a = int(counts0.argmax())
        n_a = int(counts[c_a])
        p_low = float(clopper_pearson_lower(n_a, n, alpha))
        rate = float(self.sigma_fn.semi_elasticity)
        method = "input_dependent" if rate > 0 else "cohen"
        if p_low <= 0.5:
            return CertifyResult(ABSTAIN, 0.0, p_low, sigma, n_a, n, method, counts0, counts)
        if rate > 0:
            radius = input_dependent_radius(p_low, sigma, rate, dim=dim, **self.radius_kwargs)
        else:
            radius = cohen_radius(p_low, sigma)
        return CertifyResult(c_a, float(radius), p_low, sigma, n_a, n, method, counts0, counts)

    def certify_batch(
        self,
        x: Tensor,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> list[CertifyResult]:
        """``certify`` for each example of a batch x (B, ...), one shared generator drawing in the same order as
        ``certify`` called on each example in turn; noise of several examples shares forward passes
        (:meth:`certify_many`)."""
        return self.certify_many(list(x), n0, n, alpha, batch_size, [generator] * len(x))

    def certify_many(
        self,
        xs: Sequence[Tensor],
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> list[CertifyResult]:
        """CERTIFY for several inputs, packing their noise into shared forward passes of up to ``batch_size``.

        Gives the certificates of ``[certify(x, ..., g) for x, g in zip(xs, generators)]``: every draw is
        the same (each input's noise comes from its own generator -- or the shared or global stream -- in
        the chunks and the order that ``certify`` uses: n0 selection samples, then n estimation samples,
        ``batch_size`` at a time), only the forward passes are shared. When n0 or n is small relative to
        ``batch_size``, the chunks of consecutive inputs fill one pass instead of one pass each. A base
        model whose logits for one sample depend on the other samples of its batch (batch-norm in train
        mode is excluded by eval mode) would break this equality; floating-point kernels that change
        with the batch size could in principle flip a near-tie argmax (docs/speed.md).
        """
        generators = list(generators) if generators is not None else [None] * len(xs)
        if len(generators) != len(xs):
            raise ValueError(f"certify_many: {len(xs)} inputs but {len(generators)} generators")
        prepared = [self._prepare(x) for x in xs]
        # jobs in the order certify() draws them: input by input, selection then estimation chunks
        jobs = [
            (i, phase, size)
            for i in range(len(xs))
            for phase, total in ((0, n0), (1, n))
            for size in _chunks(total, batch_size)
        ]
        counts = self._packed_counts(prepared, jobs, batch_size, generators, slots=2 * len(xs))
        return [
            self._certificate(counts[2 * i], counts[2 * i + 1], n, alpha, sigma, x.numel())
            for i, (x, sigma) in enumerate(prepared)
        ]

    def _packed_counts(
        self,
        prepared: list[tuple[Tensor, float]],
        jobs: list[tuple[int, int, int]],
        batch_size: int,
        generators: list[torch.Generator | None],
        slots: int,
    ) -> list[Tensor]:
        """Class counts per (input, phase) slot; consecutive noise chunks share a forward pass up to ``batch_size``."""
        counts: Tensor | None = None
        pending: list[tuple[int, Tensor]] = []
        filled = 0

        def flush() -> None:
            nonlocal counts, pending, filled
            if not pending:
                return
            logits = self.base_model(torch.cat([batch for _, batch in pending]))
            if logits.dim() != 2 or logits.shape[0] != filled:
                raise ValueError(f"base model must return (batch, K) logits, got {tuple(logits.shape)}")
            if not bool(torch.isfinite(logits).all()):
                # argmax of a NaN row is class 0: such votes would certify class 0 (as in _counts)
                raise NonFiniteLogitsError(
                    "the base model returned NaN or infinite logits on noisy inputs; no vote is counted from "
                    "them. Check the model's weights (robustlit.load_classifier verifies them) and the input."
                )
            k = logits.shape[1]
            slot = torch.cat([torch.full((len(b),), s, device=logits.device) for s, b in pending])
            votes = torch.bincount(slot * k + logits.argmax(dim=1), minlength=slots * k).view(slots, k)
            counts = votes if counts is None else counts + votes
            pending, filled = [], 0

        with torch.no_grad(), _eval_mode(self.base_model):
            for i, phase, size in jobs:
                if filled + size > batch_size:
                    flush()
                x, sigma = prepared[i]
                generator = generators[i]
                noise_device = generator.device if generator is not None else x.device
                noise = torch.randn((size, *x.shape), generator=generator, device=noise_device, dtype=x.dtype)
                # No clipping of x + noise (Cohen et al.), as in _counts.
                pending.append((2 * i + phase, x.unsqueeze(0) + sigma * noise.to(x.device)))
                filled += size
            flush()
        assert counts is not None
        return list(counts.cpu())

    def predict_batch(
        self, x: Tensor, n: int, alpha: float, batch_size: int, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """``predict`` for each example of a batch x (B, ...); returns an int array (-1 = abstain)."""
        return np.array([self.predict(xi, n, alpha, batch_size, generator) for xi in x], dtype=np.int64)

    def _prepare(self, x: Tensor) -> tuple[Tensor, float]:
        """Check the bounds, move x to the model's device (if it has one) as float, evaluate sigma(x)."""
        self.check_input(x)
        device = self.device
        if device is not None:
            x = x.to(device)
        if not x.is_floating_point():
            x = x.float()
        with torch.no_grad():
            sigma = float(self.sigma_fn(x.unsqueeze(0)).reshape(-1)[0])
        if not 0 < sigma < float("inf"):  # also refuses NaN
            raise ValueError(f"sigma(x) must be positive and finite, got {sigma}")
        return x, sigma

    def _counts(
        self, x: Tensor, sigma: float, num_samples: int, batch_size: int, generator: torch.Generator | None
    ) -> Tensor:
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}")
        device = x.device
        noise_device = generator.device if generator is not None else device
        counts: Tensor | None = None
        non_finite: Tensor | None = None  # checked once at the end: no device synchronisation per batch
        remaining = num_samples
        with torch.no_grad(), _eval_mode(self.base_model):
            while remaining > 0:
                size = min(batch_size, remaining)
                remaining -= size
                noise = torch.randn((size, *x.shape), generator=generator, device=noise_device, dtype=x.dtype)
                # No clipping of x + noise (Cohen et al.): the certificate is for the unclipped Gaussian.
                logits = self.base_model(x.unsqueeze(0) + sigma * noise.to(device))
                if logits.dim() != 2 or logits.shape[0] != size:
                    raise ValueError(f"base model must return (batch, K) logits, got {tuple(logits.shape)}")
                bad = ~torch.isfinite(logits).all()
                non_finite = bad if non_finite is None else non_finite | bad
                votes = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
                counts = votes if counts is None else counts + votes
        assert counts is not None and non_finite is not None
        if bool(non_finite):
            # argmax of a NaN row is class 0: such votes would certify class 0
            raise NonFiniteLogitsError(
                "the base model returned NaN or infinite logits on noisy inputs; no vote is counted from them. "
                "Check the model's weights (robustlit.load_classifier verifies them) and the input."
            )
        return counts.cpu()
