"""The attack registry: attack names -> builders, extended by user code.

A builder turns an :class:`~robustlit.attacks.spec.AttackSpec` into ``attack(x, y) -> x_adv``::

    from robustlit.attacks.registry import register_attack

    @register_attack("my_attack", losses=("ce",), default_loss="ce")
    def build(spec, model, num_classes, bounds, batch_size):
        return lambda x, y: ...

Built-in attacks are registered in ``adapters.py`` (torchattacks / pyautoattack) and ``native.py``
(robustlit's PGD). A YAML config names a user attack by its module path and registered name,
``name: mypackage.mymodule.my_attack``: the module part is imported when the spec is parsed (the
import runs its ``@register_attack``), then ``my_attack`` is looked up here and is the attack's
name in metrics. A module already imported (e.g. by a script) can be referred to by the bare
registered name. :func:`build_attack` wraps every builder with the same checks: pixel-space inputs,
attack mode, and the threat model of every returned example (docs/contracts.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from robustlit.attacks.eval_mode import attack_mode, attack_precision
from robustlit.attacks.losses import check_loss
from robustlit.utils.errors import did_you_mean

if TYPE_CHECKING:
    from robustlit.attacks.spec import AttackSpec

AttackFn = Callable[[Tensor, Tensor], Tensor]
AttackBuilder = Callable[["AttackSpec", nn.Module, int, "tuple[float, float] | None", int], AttackFn]
Budget = Literal["steps", "queries", "none"]


@dataclass(frozen=True)
class RegisteredAttack:
    """A builder and what the spec may ask of it (checked when an AttackSpec is parsed).

    Args:
        builder: ``(spec, model, num_classes, bounds, batch_size) -> attack(x, y) -> x_adv``.
        losses: selectable losses (``AttackSpec.loss``); empty = the attack has its own objective.
        default_loss: the loss used when ``AttackSpec.loss`` is ``None``.
        norms: supported norms.
        minimal_norm: a minimal-norm attack (CW): outputs outside eps count as failures.
        unbounded: works on unbounded domains (feature vectors, ``bounds=None``).
        budget: which spec field is the budget named in the metric (``steps``, ``queries``, none).
        eot: supports ``eot_samples > 1``.
        takes_step_size: the attack takes ``step_size`` and ``random_start`` (PGD); attacks that choose their
            own step size and starting point (APGD, FAB, CW, Square, ...) refuse them, so that a spec never
            names a setting that did not run.
        check: extra parse-time check of a spec (raises ``ValueError`` with the fix).
    """

    builder: AttackBuilder
    losses: tuple[str, ...] = ()
    default_loss: str | None = None
    norms: tuple[str, ...] = ("Linf", "L2")
    minimal_norm: bool = False
    unbounded: bool = False
    budget: Budget = "steps"
    eot: bool = False
    check: Callable[[AttackSpec], None] | None = None
    takes_step_size: bool = True


ATTACKS: dict[str, RegisteredAttack] = {}
_BUILTIN_MODULES = ("robustlit.attacks.adapters", "robustlit.attacks.native")


def register_attack(
    name: str,
    *,
    losses: tuple[str, ...] = (),
    default_loss: str | None = None,
    norms: tuple[str, ...] = ("Linf", "L2"),
    minimal_norm: bool = False,
    unbounded: bool = False,
    budget: Budget = "steps",
    eot: bool = False,
    check: Callable[[AttackSpec], None] | None = None,
    takes_step_size: bool = True,
    replace: bool = False,
) -> Callable[[AttackBuilder], AttackBuilder]:
    """Decorator registering ``builder`` under ``name`` (see :class:`RegisteredAttack` for the fields).

    Re-registering a name raises unless ``replace=True`` (re-importing the same module is allowed).
    """
    if not name or "." in name:
        raise ValueError(f"attack names are non-empty and contain no dot; got {name!r}")
    if losses and default_loss not in losses:
        raise ValueError(f"register_attack({name!r}): default_loss {default_loss!r} is not among {losses}")
    for loss in losses:
        check_loss(loss, num_classes=3)

    def decorate(builder: AttackBuilder) -> AttackBuilder:
        old = ATTACKS.get(name)
        same = old is not None and (old.builder.__module__, old.builder.__qualname__) == (
            builder.__module__,
            builder.__qualname__,
        )
        if old is not None and not (replace or same):
            raise ValueError(f"attack {name!r} is already registered (by {old.builder.__module__}); pass replace=True")
        ATTACKS[name] = RegisteredAttack(
            builder, losses, default_loss, norms, minimal_norm, unbounded, budget, eot, check, takes_step_size
        )
        return builder

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def registered_attacks() -> list[str]:
    """Names in registration order (built-ins first)."""
    _load_builtins()
    return list(ATTACKS)


def short_name(name: str) -> str:
    """``mypackage.mymodule.my_attack`` -> ``my_attack`` (the registered name); other names unchanged."""
    return name.rsplit(".", 1)[-1]


def lookup(name: str) -> RegisteredAttack:
    """The registered attack ``name``; ``package.module.attack`` imports ``package.module`` first."""
    _load_builtins()
    if "." in name and short_name(name) not in ATTACKS:
        module = name.rsplit(".", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(
                f'AttackSpec "name": cannot import {module!r} to find attack {short_name(name)!r} ({error}); '
                "put the module on PYTHONPATH."
            ) from error
    entry = ATTACKS.get(short_name(name))
    if entry is None:
        listed = ", ".join(repr(n) for n in ATTACKS)
        raise ValueError(
            f'AttackSpec "name": unknown attack {name!r}{did_you_mean(short_name(name), ATTACKS)}. '
            f"Registered attacks: {listed}. "
            "A user attack is registered with @robustlit.attacks.register_attack and named "
            "`package.module.attack_name` in configs."
        )
    return entry


def inside_threat_model(x_adv: Tensor, x: Tensor, spec: AttackSpec, tol: float = 1e-5) -> Tensor:
    """Per-example mask: is x_adv within B_eps(x) (and the box, checked by the caller)?"""
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if spec.norm == "Linf" else delta.norm(dim=1)
    return size <= spec.eps + tol


def build_attack(
    spec: AttackSpec,
    model: nn.Module,
    num_classes: int,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
) -> AttackFn:
    """Return ``attack(x, y) -> x_adv`` for ``spec`` against ``model`` (built on the model's device).

    The returned function enters :func:`attack_mode` and :func:`attack_precision` (float32 unless
    ``spec.precision`` is ``bf16``, whatever autocast the caller runs under), checks the inputs lie in ``bounds``, and
    verifies that every adversarial example respects the threat model: a bounded attack that steps
    outside is a bug and raises; a minimal-norm attack (CW) outside eps is replaced by the clean
    input, i.e. counted as a failed attack.
    """
    entry = lookup(spec.name)
    if bounds is None and not entry.unbounded:
        unbounded = [n for n, e in ATTACKS.items() if e.unbounded]
        raise ValueError(
            f"attack {spec.name!r} assumes inputs in [0, 1], but this data has an unbounded domain "
            f"(feature vectors); use name: native_pgd (attacks for unbounded domains: {unbounded})."
        )
    if spec.effective_loss is not None:
        check_loss(spec.effective_loss, num_classes)
    inner = entry.builder(spec, model, num_classes, bounds, batch_size)

    def attack(x: Tensor, y: Tensor) -> Tensor:
        if bounds is not None and (x.min() < bounds[0] or x.max() > bounds[1]):
            raise ValueError(
                f"{spec.name}: inputs span [{x.min().item():.4g}, {x.max().item():.4g}], outside {bounds}. "
                "robustlit attacks work in pixel space: feed un-normalised inputs and keep normalisation "
                "inside the model (robustlit.models.Normalize)."
            )
        with attack_mode(model), attack_precision(spec, x.device):
            x_adv = inner(x, y).detach().to(device=x.device, dtype=x.dtype)
        inside = inside_threat_model(x_adv, x, spec)
        if bounds is not None:
            inside &= (x_adv >= bounds[0] - 1e-6).flatten(1).all(1) & (x_adv <= bounds[1] + 1e-6).flatten(1).all(1)
        if not bool(inside.all()):
            if not entry.minimal_norm:
                raise RuntimeError(
                    f"{spec.name} returned {int((~inside).sum())} examples outside the threat model "
                    f"({spec.norm}, eps={spec.eps}); refusing to report a robust accuracy from them."
                )
            x_adv = torch.where(inside.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
        return x_adv

    return attack
