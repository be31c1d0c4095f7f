"""KL-regularised DRO instance weights and the compositional (SCGD) running normaliser.

DONE (Sow et al., ICLR 2024; docs/reweighting.md). For per-example losses ℓ_1..ℓ_M and temperature
r > 0 the inner problem

    max_{w ∈ Δ_M}  Σ_i w_i ℓ_i − r · KL(w ‖ uniform)

has the closed-form solution w* = softmax(ℓ / r) (:func:`dro_weights`) and the optimal value
F = r · log( (1/M) Σ_i exp(ℓ_i / r) ) (:func:`dro_objective`, Gibbs variational identity), whose
gradient is Σ_i w*_i ∇ℓ_i. F is a composition f(g) with g = mean exp(ℓ/r) and f(u) = r log u; a
minibatch plug-in estimate of ∇(f∘g) is biased, so CID/SCGD keeps a running estimate u_t of g
(:class:`RunningNormaliser`, the compositional reformulation of eq. 6).

Everything is computed in log space (``logsumexp``): ℓ/r overflows ``exp`` for small r.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustlit.losses.instance_weights import InstanceWeighting, LossTerms, WeightedTerm
from robustlit.utils.distributed import world


def _check_losses(losses: Tensor) -> None:
    if losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(f"expected a non-empty 1-D tensor of per-example losses; got shape {tuple(losses.shape)}")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"the DRO temperature r must be > 0 (use math.inf for uniform weights); got {temperature}")


def dro_weights(losses: Tensor, temperature: float) -> Tensor:
    """Closed-form KL-DRO weights w* = softmax(ℓ / r) over the batch (Sow et al. 2024, eq. 5).

    The weights sum to 1; r → ∞ gives uniform weights (plain adversarial training), r → 0 puts all
    mass on the largest loss (ties share it). ``temperature=math.inf`` is allowed and gives exactly
    uniform weights. The result keeps the autograd graph of ``losses``; detach it to use the weights
    as constants (the envelope theorem makes both give the same gradient of the DRO objective).
    """
    _check_losses(losses)
    _check_temperature(temperature)
    return torch.softmax(losses / temperature, dim=0)


def dro_objective(losses: Tensor, temperature: float) -> Tensor:
    """The DRO value r · log( (1/M) Σ_i exp(ℓ_i / r) ) = max_w Σ w_i ℓ_i − r KL(w ‖ U) (Gibbs identity).

    Its autograd gradient is Σ_i softmax(ℓ/r)_i ∇ℓ_i. For ``temperature=math.inf`` this is the plain
    mean of the losses (the r → ∞ limit), so the function is continuous in r.

    Numerics: with m = max ℓ and z = (ℓ − m)/r ≤ 0 the value is m + r log mean exp(z). For large r the
    direct form r (logsumexp(z) − log M) cancels catastrophically (the result is O(r · var z) but the
    rounding error is O(r · float eps)), so when the spread of z is below 1 the log1p/expm1 form
    m + r log1p(mean expm1(z)) is used instead; otherwise the logsumexp form, which is accurate there.
    """
    _check_losses(losses)
    _check_temperature(temperature)
    if math.isinf(temperature):
        return losses.mean()
    shift = losses.detach().max()
    z = (losses - shift) / temperature
    direct = torch.logsumexp(z, dim=0) - math.log(losses.numel())
    small_spread = torch.log1p(torch.expm1(z).mean())
    log_mean_exp = torch.where(z.detach().min() > -1.0, small_spread, direct)
    return shift + temperature * log_mean_exp


def weighted_mean(losses: Tensor, weights: Tensor, self_normalised: bool = False) -> Tensor:
    """(1/N) Σ_i w_i ℓ_i, the minibatch estimate for weights that average to 1 (GAIRAT, MAIL, SCGD ω).

    With ``self_normalised=True`` it returns Σ_i w_i ℓ_i / Σ_i w_i instead (use this, or ``(w * ℓ).sum()``,
    for weights on the simplex such as :func:`dro_weights`). Weights are used as given (not detached).
    """
    _check_losses(losses)
    if weights.shape != losses.shape:
        raise ValueError(f"weights shape {tuple(weights.shape)} differs from losses shape {tuple(losses.shape)}")
    weighted = weights * losses
    if self_normalised:
        return weighted.sum() / weights.sum()
    return weighted.mean()


class RunningNormaliser(nn.Module):
    """SCGD running estimate u_t of g = mean_i exp(ℓ_i / r), stored as log u_t (SCGD, Wang et al. 2017).

    ``update`` performs u_t = (1 − τ) u_{t−1} + τ · mean_{i∈B} exp(ℓ_i / r) (on the first call,
    u_1 = the batch mean) and returns the detached per-example weights ω_i = exp(ℓ_i / r) / u_t, so that
    ``weighted_mean(losses, ω)`` has gradient mean_i ω_i ∇ℓ_i, the SCGD estimate of ∇ r log g (r cancels).

    log u_t and an "initialised" flag are buffers: they are saved in checkpoints and follow
    ``module.to(device)``. The buffer is float32 (float64 is unavailable on some accelerators, and log
    space keeps the relative precision of u_t at float32 resolution); the weights come back in the
    dtype of ``losses``.

    Choice (``normalise_weights``, default False): the ω_i are *not* rescaled to average 1 over the
    batch. Their batch mean is exp-mean(ℓ/r)/u_t, which tells how hard this batch is compared with the
    running average; that cross-batch information is exactly what SCGD adds over the biased plug-in
    estimate. Rescaling them to mean 1 gives ω = M · softmax(ℓ/r), i.e. the plug-in minibatch DRO weights
    (the running estimate is then still maintained but no longer affects the gradient). It is offered
    for ablations and for step-size-sensitive optimisers.

    Under DDP each rank updates its own buffer from its own batch; with ``broadcast_buffers`` (DDP's
    default) rank 0's value wins at the next forward. Pass a globally reduced batch mean (e.g. gather
    the losses first) if every rank must use the same u_t.
    """

    log_u: Tensor
    initialised: Tensor

    def __init__(self, normalise_weights: bool = False) -> None:
        super().__init__()
        self.normalise_weights = normalise_weights
        self.register_buffer("log_u", torch.zeros((), dtype=torch.float32))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @property
    def value(self) -> Tensor:
        """u_t itself (may overflow to inf for very small r; prefer ``log_u``)."""
        return self.log_u.exp()

    def reset(self) -> None:
        """Forget the running estimate; the next ``update`` starts again from the batch mean."""
        self.log_u.zero_()
        self.initialised.fill_(False)

    @torch.no_grad()
    def update(self, losses: Tensor, temperature: float, momentum: float) -> Tensor:
        """Fold the batch into u_t with momentum τ ∈ [0, 1] and return the weights ω_i = exp(ℓ_i/r)/u_t.

        τ = 1 uses the batch value only; τ = 0 freezes u_t (after the first call). Returns a detached
        tensor shaped like ``losses``.
        """
        _check_losses(losses)
        _check_temperature(temperature)
        if math.isinf(temperature):
            raise ValueError("RunningNormaliser needs a finite temperature (r = inf means uniform weights)")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum tau must lie in [0, 1]; got {momentum}")
        dtype = torch.promote_types(losses.dtype, self.log_u.dtype)
        scaled = losses.detach().to(dtype) / temperature
        log_batch = torch.logsumexp(scaled, dim=0) - math.log(scaled.numel())
        log_u = self.log_u.to(device=losses.device, dtype=dtype)
        if not bool(self.initialised):
            new_log_u = log_batch
        elif momentum == 1.0:
            new_log_u = log_batch
        elif momentum == 0.0:
            new_log_u = log_u
        else:
            terms = torch.stack([math.log1p(-momentum) + log_u, math.log(momentum) + log_batch])
            new_log_u = torch.logsumexp(terms, dim=0)
        self.log_u.copy_(new_log_u)
        self.initialised.fill_(True)
        log_weights = scaled - new_log_u
        if self.normalise_weights:
            log_weights = log_weights - (torch.logsumexp(log_weights, dim=0) - math.log(log_weights.numel()))
        return log_weights.exp().to(losses.dtype)

    def extra_repr(self) -> str:
        return f"normalise_weights={self.normalise_weights}"


def _all_gather(values: Tensor) -> Tensor:
    """(world_size, N) stack of every rank's ``values`` (equal N on every rank); (1, N) when not distributed."""
    rank, size = world()
    if size == 1:
        return values.unsqueeze(0)
    parts = [torch.empty_like(values) for _ in range(size)]
    dist.all_gather(parts, values.contiguous())
    return torch.stack(parts)


class DROWeights(InstanceWeighting):
    """KL-DRO instance weights with the SCGD running normaliser (DONE, Sow et al., ICLR 2024, eqs. 5-6).

    The weights solve max_{w ∈ Δ} Σ_i w_i ℓ_i − r KL(w ‖ uniform) over the per-example losses ℓ_i of the
    objective (natural + robust terms), i.e. w* = softmax(ℓ / r), and by default multiply the whole loss
    ℓ_i (``weighted_term: whole``, DONE's formulation; ``robust`` weights only the robust term, e.g. the KL
    of TRADES, like MAIL-TRADES, with the weights still computed from the whole loss). A
    running estimate u_t of mean exp(ℓ / r) de-biases the minibatch estimate of this compositional
    objective: u_t = (1 − τ) u_{t−1} + τ · mean_{i∈B} exp(ℓ_i / r) and ω_i = exp(ℓ_i / r) / u_t
    (:class:`RunningNormaliser`). r = ∞ (``temperature: null``) gives exactly uniform weights.

    Under ``torch.distributed`` the losses of all ranks are gathered before u_t is updated, so every
    rank keeps the same normaliser (the global batch is the minibatch). :meth:`statistics` reports
    ``dro/log_u`` and ``dro/omega_mean`` (how hard this batch is relative to the running average).

    Args:
        temperature: DRO temperature r > 0; ``None`` or ``math.inf``: uniform weights. The default 1.0 is
            robustlit's choice (the paper's value could not be established; docs/reweighting.md).
        momentum: τ ∈ [0, 1] of the running normaliser (1 = plug-in minibatch estimate); default 0.1, likewise.
        normalise_weights: rescale ω to mean 1 per batch (the plug-in weights |B| softmax(ℓ / r)).
        begin_epoch: first reweighted epoch.
        weighted_term: ``whole`` (default), ``robust`` or ``natural``.
    """

    default_weighted_term: WeightedTerm = "whole"

    def __init__(
        self,
        temperature: float | None = 1.0,
        momentum: float = 0.1,
        normalise_weights: bool = False,
        begin_epoch: int = 0,
        weighted_term: WeightedTerm | None = None,
    ) -> None:
        super().__init__(begin_epoch, weighted_term)
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature r must be > 0 (or null / .inf for uniform weights); got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum tau must lie in [0, 1]; got {momentum}")
        self.temperature = math.inf if temperature is None else float(temperature)
        self.momentum = float(momentum)
        self.normaliser = RunningNormaliser(normalise_weights=normalise_weights)
        self._statistics: dict[str, Tensor] = {}

    @property
    def uniform(self) -> bool:
        return math.isinf(self.temperature)

    def forward(self, terms: LossTerms) -> Tensor:
        """ω_i = exp(ℓ_i / r) / u_t after folding this (global) batch into u_t; ones when r = ∞. Detached."""
        self._statistics = {}
        losses = terms.losses.detach()
        if self.uniform:
            return torch.ones_like(losses)
        rank, size = world()
        gathered = _all_gather(losses)
        omega = self.normaliser.update(gathered.reshape(-1), self.temperature, self.momentum)
        omega = omega.view(size, -1)[rank]
        self._statistics = {"dro/log_u": self.normaliser.log_u.clone(), "dro/omega_mean": omega.mean()}
        return omega

    def statistics(self) -> dict[str, Tensor]:
        return self._statistics

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, momentum={self.momentum}, begin_epoch={self.begin_epoch}, "
            f"weighted_term={self.weighted_term}"
        )
