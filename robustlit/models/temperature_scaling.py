"""Temperature scaling, the post-hoc calibration baseline (Guo, Pleiss, Sun, Weinberger, ICML 2017, Sec. 4.2).

One scalar T > 0 divides every logit, softmax(z / T): the predicted class (and so the accuracy) is unchanged,
only the confidence moves (T > 1 softens over-confident predictions). T is fitted once on held-out
*validation* logits by minimising the NLL, never on the test set (docs/calibration.md).

Hand-written because torchmetrics and torch offer no calibrator; it is a one-dimensional convex problem:
NLL(b · z) is convex in b = 1/T (a log-sum-exp of functions linear in b, minus a linear term), so it is
unimodal in log b and a bounded scalar search (scipy's ``minimize_scalar``) finds the minimum to
``tolerance`` without the step-size tuning the LBFGS of the authors' code needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from torch import Tensor, nn

__all__ = ["TemperatureScaled", "fit_temperature"]


def fit_temperature(
    logits: Tensor, labels: Tensor, min_temperature: float = 1e-2, max_temperature: float = 1e2, tolerance: float = 1e-6
) -> float:
    """T = argmin_T mean_i −log softmax(z_i / T)_{y_i} over [min_temperature, max_temperature].

    Args:
        logits: (N, K) validation logits of the model to calibrate.
        labels: (N,) integer labels.
        min_temperature, max_temperature: search interval (a T at either end is returned as such).
        tolerance: absolute tolerance on log T.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1] or logits.shape[0] == 0:
        shapes = f"{tuple(logits.shape)}, {tuple(labels.shape)}"
        raise ValueError(f"need logits (N, K) and labels (N,), N >= 1; got {shapes}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf: no temperature can be fitted")
    if not 0 < min_temperature < max_temperature < math.inf:
        raise ValueError(f"need 0 < min_temperature < max_temperature < inf; got {min_temperature}, {max_temperature}")
    z = logits.detach().double().cpu()
    y = labels.detach().long().cpu()

    def nll(log_inverse_temperature: float) -> float:
        return F.cross_entropy(z * math.exp(log_inverse_temperature), y).item()

    bounds = (-math.log(max_temperature), -math.log(min_temperature))
    result = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": tolerance})
    return float(math.exp(-result.x))


class TemperatureScaled(nn.Module):
    """``model(x) / T``: logits whose softmax is temperature-scaled (same argmax as ``model``).

    Args:
        model: maps inputs to logits.
        temperature: T > 0, e.g. from :func:`fit_temperature` on validation logits.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not 0 < temperature < math.inf:
            raise ValueError(f"temperature must be positive and finite; got {temperature}")
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}"
