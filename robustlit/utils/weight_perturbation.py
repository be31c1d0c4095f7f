"""Adversarial weight perturbation (Wu et al., NeurIPS 2020, "Adversarial weight perturbation helps robust
generalization", Algorithm 1), pure torch.

One ascent step on the training loss, layer-wise normalised: for every weight matrix / kernel w_l
(parameters with more than one dimension; biases and batch-norm affine parameters are not perturbed,
as in the authors' ``utils_awp.py``)

    v_l = γ · ‖w_l‖ · g_l / ‖g_l‖,   g_l = ∂ loss / ∂ w_l,

so ‖v_l‖ = γ ‖w_l‖. The authors compute g with one SGD step of a proxy copy of the model, whose
batch-norm statistics absorb the extra forward; here the gradient is taken directly and batch-norm
running statistics are frozen during the ascent (:func:`frozen_batchnorm_statistics`), which gives
the same v without a second model. :class:`WeightPerturbation` adds v and removes it by restoring a
copy of the original values, so w is recovered exactly (no w + v − v rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

#: Added to ‖g_l‖ so that a zero gradient gives v_l = 0 (the reference adds 1e-20).
GRADIENT_NORM_FLOOR = 1e-20


def perturbable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters AWP perturbs: every weight with more than one dimension (conv / linear)."""
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad and p.dim() > 1]


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Batch-norm layers keep using batch statistics in train mode but do not update their running ones."""
    momenta = {}
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            momenta[layer] = (layer.momentum, layer.num_batches_tracked.clone() if layer.track_running_stats else None)
            layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, (momentum, tracked) in momenta.items():
            layer.momentum = momentum
            if tracked is not None:
                layer.num_batches_tracked.copy_(tracked)


def layerwise_perturbation(weights: list[Tensor], gradients: list[Tensor], gamma: float) -> list[Tensor]:
    """v_l = γ ‖w_l‖ g_l / (‖g_l‖ + floor) for each layer l (Wu et al. 2020, Algorithm 1)."""
    return [
        gamma * w.detach().norm() * g.detach() / (g.detach().norm() + GRADIENT_NORM_FLOOR)
        for w, g in zip(weights, gradients, strict=True)
    ]


class WeightPerturbation:
    """A perturbation v of some parameters: :meth:`apply` sets w ← w + v, :meth:`remove` restores w exactly.

    Args:
        params: the perturbed parameters (e.g. :func:`perturbable_parameters`).
        perturbation: v, one tensor per parameter.
    """

    def __init__(self, params: list[nn.Parameter], perturbation: list[Tensor]) -> None:
        if len(params) != len(perturbation):
            raise ValueError("one perturbation tensor per parameter")
        self.params = params
        self.perturbation = perturbation
        self._saved: list[Tensor] | None = None

    @property
    def applied(self) -> bool:
        return self._saved is not None

    @torch.no_grad()
    def apply(self) -> None:
        if self.applied:
            raise RuntimeError("the weight perturbation is already applied")
        self._saved = [p.detach().clone() for p in self.params]
        for p, v in zip(self.params, self.perturbation, strict=True):
            p.add_(v)

    @torch.no_grad()
    def remove(self) -> None:
        """Restore the unperturbed weights (a no-op when not applied)."""
        if self._saved is None:
            return
        for p, w in zip(self.params, self._saved, strict=True):
            p.copy_(w)
        self._saved = None

    def relative_sizes(self) -> list[float]:
        """‖v_l‖ / ‖w_l‖ per layer (γ for every layer with a non-zero gradient), at the unperturbed weights."""
        weights = self._saved if self._saved is not None else [p.detach() for p in self.params]
        return [float(v.norm() / w.norm()) for v, w in zip(self.perturbation, weights, strict=True)]


def adversarial_weight_perturbation(
    module: nn.Module, loss_fn: Callable[[], Tensor], gamma: float
) -> WeightPerturbation:
    """The AWP perturbation of ``module``'s weights for the scalar ``loss_fn()`` (not yet applied).

    ``loss_fn`` is evaluated once at the current weights with batch-norm running statistics frozen;
    one normalised ascent step gives v (see the module docstring).
    """
    named = perturbable_parameters(module)
    params = [p for _, p in named]
    with frozen_batchnorm_statistics(module), torch.enable_grad():
        loss = loss_fn()
        gradients = torch.autograd.grad(loss, params, allow_unused=True)
    gradients = [torch.zeros_like(p) if g is None else g for p, g in zip(params, gradients, strict=True)]
    return WeightPerturbation(params, layerwise_perturbation(params, gradients, gamma))
