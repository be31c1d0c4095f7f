"""Robustness curves of an adversarial evaluation: accuracy against eps for one or more attacks.

Each attack spec is rerun at every radius on the evaluated examples; an example broken at eps counts as
broken at every larger eps (the smaller ball lies inside the larger one), so the reported curve is the
per-example worst case and is monotone non-increasing (Carlini et al., "On Evaluating Adversarial
Robustness", 2019, sec. 5; docs/audit.md). The per-example columns are computed batch by batch inside
the evaluation's ``collect`` (sharded and seeded like the attacks) and summarised in the format of
:func:`robustlit.audit.robustness_curve`, which :func:`robustlit.audit.robustness_curve_figure` draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from robustlit.attacks.ball import Bounds
from robustlit.attacks.registry import build_attack
from robustlit.attacks.spec import AttackSpec


def curve_label(spec: AttackSpec) -> str:
    """The metric name without its radius, e.g. ``native_pgd20_margin_linf``."""
    return spec.metric_name.rsplit("_", 1)[0]


class CurveAttacks:
    """The curve attacks of one evaluation, built once per radius: ``broken(x, y, clean, seeded)`` -> (B, A, E)."""

    def __init__(
        self,
        specs: Sequence[AttackSpec],
        eps: Sequence[float],
        model: nn.Module,
        num_classes: int,
        bounds: Bounds,
        batch_size: int,
    ) -> None:
        self.model, self.eps = model, sorted(float(e) for e in eps)
        self.attacks = [
            [
                build_attack(dataclasses.replace(s, eps=e), model, num_classes, bounds, batch_size) if e > 0 else None
                for e in self.eps
            ]
            for s in specs
        ]

    def broken(self, x: Tensor, y: Tensor, seeded: Callable[[int], AbstractContextManager]) -> Tensor:
        """Per example, attack and radius: the attack's own point at that radius is misclassified (bool)."""
        out = torch.zeros(x.shape[0], len(self.attacks), len(self.eps), dtype=torch.bool, device=x.device)
        for a, row in enumerate(self.attacks):
            for e, attack in enumerate(row):
                if attack is None:  # eps = 0: the clean point
                    continue
                with seeded(a * len(self.eps) + e):
                    x_adv = attack(x, y)
                with torch.no_grad():
                    out[:, a, e] = self.model(x_adv).argmax(dim=1) != y
        return out


def summarise_curves(
    specs: Sequence[AttackSpec], eps: Sequence[float], clean: Tensor, broken: Tensor
) -> dict[str, dict[str, object]]:
    """``{label: curve}`` from the gathered columns ``clean`` (N,) and ``broken`` (N, A, E), in the keys of
    :func:`robustlit.audit.robustness_curve`: ``robust_accuracy`` is the monotone per-example worst case,
    ``attack_accuracy`` each radius's own run."""
    n = int(clean.numel())
    radii = sorted(float(e) for e in eps)
    curves: dict[str, dict[str, object]] = {}
    for a, spec in enumerate(specs):
        own = broken[:, a, :] | ~clean[:, None]
        worst = torch.cummax(own.to(torch.uint8), dim=1).values.bool()  # broken at eps => at every larger eps
        curves[curve_label(spec)] = {
            "name": curve_label(spec),
            "kind": "empirical",
            "norm": spec.norm,
            "eps": radii,
            "robust_accuracy": (1.0 - worst.float().mean(dim=0)).tolist(),
            "attack_accuracy": (1.0 - own.float().mean(dim=0)).tolist(),
            "clean_accuracy": clean.float().mean().item(),
            "n": n,
            "steps": int(spec.effective_steps),
            "restarts": int(spec.restarts),
        }
    return curves
