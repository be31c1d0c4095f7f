"""Per-example adversarial robustness score for AR-AdaLS (Qin et al., NeurIPS 2021).

R(x) = the smallest Linf radius at which a PGD attack changes the model's *predicted* class (the
prediction, not the label, is attacked, so the score also exists for unlabelled and test inputs). Two
estimates: :func:`flip_radius` (continuous: bisection per example, AR-AdaLS's default) and
:func:`robustness_score` (the smallest radius on a given increasing grid; coarse, so scores tie).
The rest of this docstring describes the grid score; the attack and its loss are shared. The attack
is the shared PGD (:meth:`robustlit.attacks.threat_model.ThreatModel.maximize`), run under the attack
discipline (every submodule in eval mode, parameter gradients off, both restored afterwards, input
gradients enabled locally even under ``torch.no_grad``).

Choices where the paper is silent:
- Grid search over the radii, attacking at each radius only the examples not yet flipped; an example
  counts as flipped at a radius when the *final* PGD iterate changes the prediction.
- Examples never flipped get the cap (the last radius) and ``flipped=False`` in the returned
  :class:`RobustnessScore`; a finite cap keeps quantile binning and averaging well defined, and the
  flag keeps "robust beyond the grid" distinguishable from "flipped at the last radius".
- Step size a = ``step_size_factor`` · ε at each radius with ``steps`` steps (defaults 0.25 and 10:
  Madry's 2.5 ε / K rule), no random start (deterministic, and CE against the prediction has a
  non-zero gradient at x unlike the TRADES KL).
- The default loss is CE against the predicted class, as described, but PGD ascends log CE, computed
  as log softplus(s) with s = logsumexp_{k≠ŷ}(z_k − z_ŷ) (so CE = softplus(s)). log is increasing
  and the factor 1/CE it puts on the gradient is positive per example, so sign-PGD takes exactly the
  steps it would take on CE and reaches the same maximisers. The direct form saturates: in float32 the
  coefficient p_ŷ − 1 of the top logit in ∇CE is exactly 0 once that logit leads by about 17, and what
  is left rides on probabilities below 1e-7 (exactly nothing for a 2-logit model [0, z]), so PGD stalls
  and the most confident (often over-confident) examples would be reported as never flipped. The log
  form has an O(1) gradient at any confidence, which also makes the score invariant to scaling logits.
  ``loss="margin"`` (max_{k≠ŷ} z_k − z_ŷ, the CW-style margin) is offered as an alternative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import pgd_attack
from robustlit.attacks.threat_model import ThreatModel

ScoreLoss = Literal["ce", "margin"]


class RobustnessScore(NamedTuple):
    """``radius`` (N,): smallest grid radius that flipped the prediction, or the cap (last radius);
    ``flipped`` (N,) bool: whether any radius on the grid flipped it."""

    radius: Tensor
    flipped: Tensor


def _loss_against(predicted: Tensor, kind: ScoreLoss) -> Callable[[Tensor], Tensor]:
    index = predicted.view(-1, 1)

    def ce(logits: Tensor) -> Tensor:
        # s = log Σ_{k≠ŷ} exp(z_k − z_ŷ); CE = softplus(s); log CE ≈ s once s < −20 (relative error e^s / 2).
        s = torch.logsumexp(logits.scatter(1, index, -torch.inf), dim=1) - logits.gather(1, index).squeeze(1)
        # The clamp keeps the unused branch finite, so torch.where does not turn 0 · inf into NaN gradients.
        return torch.where(s > -20.0, torch.log(F.softplus(s.clamp_min(-20.0))), s)

    def margin(logits: Tensor) -> Tensor:
        others = logits.scatter(1, index, -torch.inf)
        return others.max(dim=1).values - logits.gather(1, index).squeeze(1)

    if kind == "ce":
        return ce
    if kind == "margin":
        return margin
    raise ValueError(f"loss must be 'ce' or 'margin'; got {kind!r}")


def robustness_score(
    model: nn.Module,
    x: Tensor,
    radii: Sequence[float],
    steps: int = 10,
    step_size_factor: float = 0.25,
    bounds: Bounds = (0.0, 1.0),
    loss: ScoreLoss = "ce",
) -> RobustnessScore:
    """Smallest Linf radius in ``radii`` (strictly increasing, > 0) at which PGD flips ``model``'s prediction.

    ``bounds`` is the input domain kept by the attack ((0, 1) for images; ``None`` for feature vectors).
    Returns ``RobustnessScore(radius, flipped)`` on the device (and in the floating dtype) of ``x``; see
    the module docstring for the cap of examples never flipped.
    """
    radii = [float(r) for r in radii]
    if not radii:
        raise ValueError("radii must not be empty")
    if radii[0] <= 0 or any(b <= a for a, b in zip(radii, radii[1:], strict=False)):
        raise ValueError(f"radii must be positive and strictly increasing; got {radii}")
    if steps < 1 or step_size_factor <= 0:
        raise ValueError("steps must be >= 1 and step_size_factor > 0")
    x = x.detach()
    n = x.shape[0]
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    radius = torch.full((n,), radii[-1], dtype=dtype, device=x.device)
    flipped = torch.zeros(n, dtype=torch.bool, device=x.device)
    with attack_mode(model):
        with torch.no_grad():
            predicted = model(x).argmax(dim=1)
        for eps in radii:
            todo = (~flipped).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            loss_fn = _loss_against(predicted[todo], loss)
            threat = ThreatModel("Linf", eps, step_size_factor * eps, steps, random_start="none", bounds=bounds)
            x_adv = threat.maximize(model, x[todo], loss_fn)
            with torch.no_grad():
                now_flipped = model(x_adv).argmax(dim=1) != predicted[todo]
            hit = todo[now_flipped]
            radius[hit] = eps
            flipped[hit] = True
    return RobustnessScore(radius=radius, flipped=flipped)


def flip_radius(
    model: nn.Module,
    x: Tensor,
    max_radius: float,
    bisection_steps: int = 6,
    steps: int = 10,
    step_size_factor: float = 0.25,
    bounds: Bounds = (0.0, 1.0),
    loss: ScoreLoss = "ce",
) -> RobustnessScore:
    """Continuous robustness score: the smallest Linf radius at which PGD was seen to flip the prediction.

    AR-AdaLS ranks examples by adversarial robustness (Qin et al., NeurIPS 2021, sec. 4); on a coarse grid
    (:func:`robustness_score`) most examples of a standard model tie at the smallest radius. Here each
    example gets its own radius, found by bisection on [0, ``max_radius``]:

    1. attack at ``max_radius`` in the mode that keeps every success (:func:`robustlit.attacks.pgd.pgd_attack`
       with ``success``: the first iterate that changes the prediction is kept); examples never flipped get
       the cap ``max_radius`` and ``flipped=False``;
    2. the upper end ``hi`` of a flipped example is the Linf norm of its successful perturbation (at most
       the radius attacked, often less), and ``bisection_steps`` times each flipped example is attacked at
       its own radius (lo + hi) / 2: a success sets hi to the norm of the new successful perturbation, a
       failure sets lo to the midpoint.

    The score is ``hi``: a radius at which an adversarial example was found, so an upper bound on the true
    minimal flipping radius within ``(hi − lo)`` ≤ ``max_radius`` / 2^``bisection_steps`` of what this
    attack can find. Step size, steps and loss as in :func:`robustness_score` (per-example radius
    ε_i, step ``step_size_factor`` · ε_i, no random start). Returns tensors on the device of ``x``.
    """
    if not max_radius > 0:
        raise ValueError(f"max_radius must be > 0; got {max_radius}")
    if bounds is not None and max_radius > bounds[1] - bounds[0]:
        raise ValueError(
            f"max_radius is an Linf radius in pixel units (at most {bounds[1] - bounds[0]:g}); got {max_radius}"
        )
    if bisection_steps < 0 or steps < 1 or step_size_factor <= 0:
        raise ValueError("bisection_steps must be >= 0, steps >= 1 and step_size_factor > 0")
    x = x.detach()
    n = x.shape[0]
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    shape = (-1, *([1] * (x.dim() - 1)))
    lo = torch.zeros(n, dtype=dtype, device=x.device)
    hi = torch.full((n,), float(max_radius), dtype=dtype, device=x.device)
    flipped = torch.zeros(n, dtype=torch.bool, device=x.device)
    with attack_mode(model):
        with torch.no_grad():
            predicted = model(x).argmax(dim=1)

        def attack(rows: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
            """(flipped?, Linf norm of the perturbation) of ``rows`` attacked at per-example ``radius``."""
            labels = predicted[rows]
            eps = radius.view(shape)
            # pgd_attack's Linf projection and sign step broadcast a per-example (N, 1, ..) radius.
            x_adv = pgd_attack(
                model, x[rows], _loss_against(labels, loss), eps=eps, step_size=step_size_factor * eps,  # type: ignore[arg-type]
                steps=steps, norm="Linf", random_start_kind="none", bounds=bounds, success=labels,
            )  # fmt: skip
            with torch.no_grad():
                hit = model(x_adv).argmax(dim=1) != labels
            return hit, (x_adv - x[rows]).flatten(1).abs().amax(dim=1).to(dtype)

        rows = torch.arange(n, device=x.device)
        hit, norm = attack(rows, hi)
        flipped[hit] = True
        hi[hit] = torch.minimum(hi[hit], norm[hit])
        todo = rows[hit]
        for _ in range(bisection_steps):
            if todo.numel() == 0:
                break
            mid = (lo[todo] + hi[todo]) / 2
            hit, norm = attack(todo, mid)
            hi[todo[hit]] = torch.minimum(mid[hit], norm[hit])
            lo[todo[~hit]] = mid[~hit]
    return RobustnessScore(radius=hi, flipped=flipped)
