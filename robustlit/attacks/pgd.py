"""The projected-gradient engine of robustlit (Madry et al. 2018; docs/evaluation.md, docs/architecture.md).

Every projected-gradient attack of the package is a call of :func:`pgd_attack`: the training-time inner
maximisation (:meth:`robustlit.attacks.threat_model.ThreatModel.maximize`), the ``native_pgd`` evaluation
attack, the audit's traced PGD (:func:`robustlit.audit.trace.traced_pgd`, with a recorder and its own
probe) and the mixed classifier's adaptive attack (:func:`robustlit.mixed.adaptive_attack.adaptive_pgd_attack`,
with its own keep rule). What they differ in is a parameter: the *probe* (how an iterate is evaluated:
loss, logits, input gradient), the *keep rule* (which point comes back, :mod:`robustlit.attacks.keep`) and
the *recorder* (who watches every iterate). The step and the projection exist here only.

Hand-written rather than taken from torchattacks because training-time inner maximisations need
losses torchattacks does not offer (TRADES' KL to the clean prediction, a DRO barrier objective,
a mixed-classifier loss that also pushes alpha), an unbounded domain for feature vectors
(torchattacks always clamps to [0, 1]), no per-call device capture or whole-model mode restore, and the
keep-every-success rule; the other evaluation attacks go through torchattacks / pyautoattack (see
``adapters.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds, Norm, RandomStart, per_example_norm, project, random_start
from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.keep import HighestFinalLoss, Iterate, KeepEverySuccess, KeepRule, LastIterate, SuccessFn

__all__ = [
    "LossFn",
    "Probe",
    "Recorder",
    "SuccessFn",
    "ascent_step",
    "eot_probe",
    "pgd_attack",
    "project",
    "random_start",
]

LossFn = Callable[[Tensor], Tensor]
#: (x_t, want_gradient) -> (input gradient or None, logits (N, K), per-example loss (N,)), all detached
Probe = Callable[[Tensor, bool], tuple[Tensor | None, Tensor, Tensor]]
#: called with every iterate of every restart (the audit's trace)
Recorder = Callable[[Iterate], None]

_TINY = 1e-12


def ascent_step(x_adv: Tensor, grad: Tensor, step_size: float, norm: Norm) -> Tensor:
    """One unprojected ascent step: x + a sign(g) (Linf) or x + a g / ||g||_2 (L2; Madry et al. 2018, eq. 2)."""
    if norm == "Linf":
        return x_adv + step_size * grad.sign()
    return x_adv + step_size * grad / (per_example_norm(grad) + _TINY)


def _gradient(model: nn.Module, x_adv: Tensor, loss_fn: LossFn, eot_samples: int) -> tuple[Tensor, Tensor, Tensor]:
    """Input gradient of the loss averaged over ``eot_samples`` forward passes (Athalye et al. 2018, sec. 4.3).

    Returns (gradient, logits, loss), each averaged over the passes and detached.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    if eot_samples == 1:
        logits = model(x_adv)
        loss = loss_fn(logits)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        return grad, logits.detach(), loss.detach()
    grad = torch.zeros_like(x_adv)
    logits_sum = loss_sum = 0
    for _ in range(eot_samples):
        logits = model(x_adv)
        loss = loss_fn(logits)
        (g,) = torch.autograd.grad(loss.sum(), x_adv)
        grad += g
        logits_sum, loss_sum = logits_sum + logits.detach(), loss_sum + loss.detach()
    return grad / eot_samples, logits_sum / eot_samples, loss_sum / eot_samples


def eot_probe(model: nn.Module, loss_fn: LossFn, eot_samples: int = 1) -> Probe:
    """The default probe: ``eot_samples`` forward passes at x_t, logits and loss averaged over them, and the
    averaged input gradient when asked for (one pass per sample either way)."""

    def probe(x_adv: Tensor, want_gradient: bool) -> tuple[Tensor | None, Tensor, Tensor]:
        if want_gradient:
            return _gradient(model, x_adv, loss_fn, eot_samples)
        with torch.no_grad():
            passes = [model(x_adv) for _ in range(eot_samples)]
            return None, sum(passes) / eot_samples, sum(loss_fn(z) for z in passes) / eot_samples

    return probe


def _ascend(
    x: Tensor,
    probe: Probe,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm,
    random_start_kind: RandomStart,
    bounds: Bounds,
    restarts: int,
    keep: KeepRule,
    recorder: Recorder | None,
) -> Tensor:
    """The one projected-gradient loop: x^{t+1} = Proj(x^t + a · step(∇ℓ(x^t))), restarts from random starts."""
    every = recorder is not None or keep.observes == "every"
    keep.start(x)
    for restart in range(restarts):
        x_adv = random_start(x, eps, norm, random_start_kind, bounds).detach()
        for step in range(steps + 1):
            last = step == steps
            if last and not (every or keep.observes == "last"):
                break  # nobody looks at the last point: no forward pass for it
            grad, logits, loss = probe(x_adv, not last)
            if every or last:
                iterate = Iterate(restart, step, last, x_adv, logits, loss, grad)
                if recorder is not None:
                    recorder(iterate)
                keep.observe(iterate)
            if last:
                break
            x_adv = project(ascent_step(x_adv, grad, step_size, norm), x, eps, norm, bounds).detach()
        keep.end_restart(x_adv)
        if keep.done():
            break
    return keep.result()


def pgd_attack(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "Linf",
    random_start_kind: RandomStart = "uniform",
    bounds: Bounds = (0.0, 1.0),
    restarts: int = 1,
    train_mode: bool = False,
    success: Tensor | SuccessFn | None = None,
    eot_samples: int = 1,
    *,
    keep: KeepRule | None = None,
    recorder: Recorder | None = None,
    probe: Probe | None = None,
) -> Tensor:
    """Maximise ``loss_fn(model(x'))`` over x' in B_eps(x) ∩ bounds by K projected steps (Madry et al. 2018, eq. 2).

    x^{t+1} = Proj( x^t + a · sign(∇ℓ(x^t)) )   (Linf),   a · ∇ℓ / ‖∇ℓ‖₂   (L2).

    ``loss_fn`` maps logits (N, K) to a per-example loss (N,) to maximise. What comes back is the ``keep``
    rule's (:mod:`robustlit.attacks.keep`); by default:

    - inner maximisation (``success=None``, training): the last iterate; with several restarts, per
      example the restart with the highest final loss (:class:`~robustlit.attacks.keep.HighestFinalLoss`).
    - evaluation (``success`` = labels y, or a function logits -> bool per example such as
      :func:`~robustlit.attacks.losses.misclassified`): :class:`~robustlit.attacks.keep.KeepEverySuccess`:
      every iterate of every restart (the random start and the last point included) is checked, and per
      example the first successful point is returned; an example with no success anywhere gets its
      highest-loss iterate. So an example is robust only if every iterate of every restart fails, and
      robust accuracy cannot rise with more steps or restarts. With ``eot_samples`` > 1, success is judged
      on the logits averaged over the passes.

    ``eot_samples`` > 1 averages the input gradient over that many forward passes (expectation over
    transformation, Athalye, Carlini and Wagner 2018, sec. 4.3) for randomised models. ``probe`` replaces
    how an iterate is evaluated (default :func:`eot_probe`; ``loss_fn`` and ``eot_samples`` are then
    unused); ``recorder`` is called with every :class:`~robustlit.attacks.keep.Iterate`. The model runs
    under :func:`attack_mode` (eval mode, no parameter gradients) unless ``train_mode`` says otherwise.
    Returns a detached tensor.
    """
    if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
        raise ValueError(
            f"pgd_attack got inputs in [{x.min().item():.4g}, {x.max().item():.4g}], outside the domain "
            f"{bounds}; robustlit attacks expect un-normalised inputs (normalisation belongs inside the model)."
        )
    if eot_samples < 1:
        raise ValueError(f"eot_samples must be >= 1; got {eot_samples}")
    if random_start_kind not in get_args(RandomStart):
        raise ValueError(f"random start must be one of {get_args(RandomStart)}; got {random_start_kind!r}")
    if success is not None and keep is not None:
        raise ValueError("pgd_attack takes success (keep every success) or keep, not both")
    if keep is None:
        keep = (
            KeepEverySuccess(success) if success is not None else LastIterate() if restarts <= 1 else HighestFinalLoss()
        )
    probe = probe or eot_probe(model, loss_fn, eot_samples)
    with attack_mode(model, train_mode=train_mode):
        x_adv = _ascend(
            x.detach(), probe, eps, step_size, steps, norm, random_start_kind, bounds, max(restarts, 1), keep, recorder
        )
    return x_adv.detach()
