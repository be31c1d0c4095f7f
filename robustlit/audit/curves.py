"""Robustness curves: accuracy against eps under attack, and certified accuracy against radius.

An empirical curve is the per-example worst case over everything run: an example broken at eps is
broken at every larger eps (the smaller ball lies inside the larger one), so the curve is monotone
non-increasing by construction (Carlini et al., "On Evaluating Adversarial Robustness", 2019).
Certified curves reuse :func:`robustlit.certify.report.certified_accuracy`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from robustlit.attacks.threat_model import Norm
from robustlit.audit.audit import AttackFactory, _inside, predict
from robustlit.audit.objectives import AttackLoss
from robustlit.audit.trace import Bounds, traced_pgd
from robustlit.certify.report import certified_accuracy


def robustness_curve(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: Norm,
    eps_list: Sequence[float],
    steps: int,
    step_factor: float = 2.5,
    bounds: Bounds = (0.0, 1.0),
    restarts: int = 1,
    loss: AttackLoss = "ce",
    attack_factory: AttackFactory | None = None,
    name: str = "pgd",
    seed: int = 0,
) -> dict[str, object]:
    """Accuracy against eps for one attack on ``(x, y)`` (one batch).

    The attack is ``attack_factory(eps=, steps=, restarts=)`` when given, else PGD with step size
    ``step_factor * eps / steps`` counting every misclassifying iterate of every restart. Returns a
    JSON-ready dict: ``name``, ``kind`` (``"empirical"``), ``norm``, ``eps`` (sorted),
    ``robust_accuracy`` (the monotone worst case), ``attack_accuracy`` (each eps's own run, for
    comparison), ``clean_accuracy``, ``n``, ``steps``, ``restarts``.
    """
    eps_sorted = sorted(float(e) for e in eps_list)
    if not eps_sorted or eps_sorted[0] < 0:
        raise ValueError(f"eps_list must be non-empty and non-negative; got {list(eps_list)}")
    x, y = x.detach(), y.detach()
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        clean_broken = predict(model, x) != y
        broken = clean_broken
        n = int(x.shape[0])
        clean_accuracy = 1.0 - int(broken.sum()) / n
        robust, own = [], []
        for eps in eps_sorted:
            torch.manual_seed(seed)
            if eps == 0:
                hit = torch.zeros_like(broken)
            elif attack_factory is None:
                step = step_factor * eps / max(steps, 1)
                trace = traced_pgd(
                    model,
                    x,
                    y,
                    norm=norm,
                    eps=eps,
                    steps=steps,
                    step_size=step,
                    bounds=bounds,
                    restarts=restarts,
                    loss=loss,
                )
                hit = trace.broken
            else:
                x_adv = attack_factory(eps=eps, steps=steps, restarts=restarts)(x, y).detach()
                hit = (predict(model, x_adv) != y) & _inside(x_adv, x, norm, eps, bounds)
            own.append(1.0 - int((hit | clean_broken).sum()) / n)
            broken = broken | hit
            robust.append(1.0 - int(broken.sum()) / n)
    return {
        "name": name,
        "kind": "empirical",
        "norm": norm,
        "eps": eps_sorted,
        "robust_accuracy": robust,
        "attack_accuracy": own,
        "clean_accuracy": clean_accuracy,
        "n": int(x.shape[0]),
        "steps": int(steps),
        "restarts": int(restarts),
    }


def certified_accuracy_curve(
    radii: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    radius_grid: Sequence[float] | None = None,
    name: str = "certified",
    norm: str = "L2",
) -> dict[str, object]:
    """Certified accuracy against radius from certification rows (radius, correct), Cohen et al. (2019).

    ``radius_grid`` defaults to 0 and every finite certified radius of a correct example (101 evenly
    spaced radii when there are more than 100). Same keys as :func:`robustness_curve` (``kind`` is
    ``"certified"``), so both plot together.
    """
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    c = np.asarray(correct).reshape(-1).astype(bool)
    if radius_grid is None:
        finite = r[c & np.isfinite(r) & (r > 0)]
        grid = np.unique(np.concatenate([[0.0], finite]))
        if grid.size > 101:
            grid = np.linspace(0.0, float(grid[-1]), 101)
    else:
        grid = np.asarray(sorted(float(g) for g in radius_grid))
    accuracy = certified_accuracy(r, c, grid.tolist())
    return {
        "name": name,
        "kind": "certified",
        "norm": norm,
        "eps": [float(g) for g in grid],
        "robust_accuracy": accuracy,
        "clean_accuracy": float(np.mean(c)),
        "n": int(r.size),
    }
