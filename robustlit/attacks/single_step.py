"""Single-step adversarial examples for fast adversarial training (pure torch).

One gradient-sign step from a noisy start, the inner maximisation of

- FGSM training (Goodfellow, Shlens and Szegedy 2015): no noise, step eps, clipped to the eps-ball;
- FGSM-RS (Wong, Rice and Kolter 2020, "Fast is better than free", sec. 4, Algorithm 3): start uniform
  in the eps-ball, step 1.25 eps, clipped back to the eps-ball (their MNIST code takes the gradient at the
  start *before* clipping it to [0, 1]; on MNIST, clipping it first leads to catastrophic overfitting);
- N-FGSM (de Jorge et al. 2022, "Make some noise", sec. 4): start uniform in the (k eps)-ball, k = 2,
  step eps, *not* clipped to the eps-ball (the example may lie up to (k + 1) eps from x).

Every variant keeps the examples inside the input domain. Hand-written (torchattacks' ``FFGSM`` has
FGSM-RS only, with no noise scale or clipping switch and no way to count GAIRAT's kappa).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode
from robustlit.attacks.pgd import LossFn


def single_step_example(
    model: nn.Module,
    x: Tensor,
    loss_fn: LossFn,
    eps: float,
    step_size: float,
    noise: float,
    clip_to_eps: bool = True,
    clip_start: bool = True,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    train_mode: bool = False,
) -> Tensor:
    """x' = x0 + a sign(∇ ℓ(x0)) with x0 = x + U(-noise, noise)^D, then (``clip_to_eps``) projected onto
    B_eps(x), and clipped to ``bounds``. ``clip_start`` clips x0 to ``bounds`` too (de Jorge et al.'s code, Wong
    et al.'s CIFAR code); without it the gradient is taken at x0 as drawn (Wong et al.'s MNIST code), which keeps
    the start's randomness on the many MNIST pixels at 0 or 1.

    ``loss_fn`` maps logits (N, K) to the per-example loss (N,) to ascend. The model runs under
    :func:`attack_mode` (eval mode unless ``train_mode``, no parameter gradients). Returns a detached tensor.
    """
    x = x.detach()
    start = x + torch.empty_like(x).uniform_(-noise, noise) if noise > 0 else x.clone()
    if bounds is not None and clip_start:
        start = start.clamp(*bounds)
    with attack_mode(model, train_mode=train_mode):
        start.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(start)).sum(), start)
    x_adv = start.detach() + step_size * grad.sign()
    if clip_to_eps:
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
    if bounds is not None:
        x_adv = x_adv.clamp(*bounds)
    return x_adv.detach()
