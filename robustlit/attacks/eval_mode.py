"""The attack-discipline context manager (docs/contracts.md, attack discipline).

Every adversarial-example generation runs inside :func:`attack_mode`: each submodule is put in
eval mode (so batch-norm uses and keeps its running statistics, dropout is off), parameter
gradients are switched off, and gradients with respect to the *input* are enabled locally even
when the caller runs under ``torch.no_grad`` (Lightning's validation loop). Everything is restored
on exit, per submodule and per parameter, also when the attack raises.

torchattacks restores the mode with a whole-model ``.train()`` (its ``_recover_model_mode``), which
would switch on submodules that a user deliberately froze in eval mode; that is why this is written
here rather than taken from torchattacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from robustlit.attacks.spec import AttackSpec

INFERENCE_MODE_HELP = (
    "Adversarial attacks and certification need input gradients, but this code runs under "
    "torch.inference_mode(). Run the Trainer with inference_mode=False "
    "(`--trainer.inference_mode false`, the default of the robustlit CLI), or call the attack outside "
    "an inference_mode block."
)


def check_gradients_available() -> None:
    """Fail loudly (never silently report clean accuracy) when gradients cannot be computed."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError(INFERENCE_MODE_HELP)


@contextmanager
def attack_mode(model: nn.Module, train_mode: bool = False) -> Iterator[nn.Module]:
    """Put ``model`` in attack discipline for the duration of the block.

    Args:
        model: the classifier to attack.
        train_mode: keep every submodule in *train* mode instead (Madry-TF semantics, where
            batch-norm uses batch statistics during the attack). Only for methods that say so
            explicitly; batch-norm running statistics are still protected (momentum set to 0).
    """
    check_gradients_available()
    modes = {module: module.training for module in model.modules()}
    grads = {param: param.requires_grad for param in model.parameters()}
    momenta: dict[nn.Module, float | None] = {}
    try:
        model.train(train_mode)
        if train_mode:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    momenta[module] = module.momentum
                    module.momentum = 0.0
        for param in grads:
            param.requires_grad_(False)
        with torch.enable_grad():
            yield model
    finally:
        for module, was_training in modes.items():
            module.training = was_training
        for param, required in grads.items():
            param.requires_grad_(required)
        for module, momentum in momenta.items():
            module.momentum = momentum


@contextmanager
def autocast_precision(precision: str, device: torch.device | str) -> Iterator[None]:
    """bfloat16 autocast on ``device``'s type when ``precision == "bf16"``; autocast switched off for ``fp32``.

    ``fp32`` switches autocast off even inside a caller that autocasts (Lightning autocasts ``training_step``
    under ``--trainer.precision bf16-mixed``): evaluation numbers must not inherit reduced precision silently
    (Micikevicius et al. 2018, mixed-precision training; docs/speed.md).
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16'; got {precision!r}")
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


@contextmanager
def attack_precision(spec: AttackSpec, device: torch.device | str) -> Iterator[None]:
    """Run an evaluation attack in the precision its spec names (``fp32`` by default), whatever autocast
    the caller is under (:func:`autocast_precision`)."""
    with autocast_precision(getattr(spec, "precision", "fp32"), device):
        yield
