"""MART loss (Wang et al., ICLR 2020, "Improving adversarial robustness requires revisiting misclassified
examples", the MART training objective):

    L_i = BCE(p(x'_i), y_i) + β · KL(p(x_i) ‖ p(x'_i)) · (1 − p_{y_i}(x_i)),
    BCE(p(x'), y) = −log p_y(x') − log(1 − max_{k≠y} p_k(x')).

The boosted cross-entropy's margin term and the misclassification weight 1 − p_y(x) are kept with
gradient, as in the authors' ``mart.py``. That code adds small constants inside the logarithms
(log(1.0001 − p + 1e-12), log(p + 1e-12), 1.0000001 − p_y); here both logarithms are computed exactly
and stably from logits (log(1 − p_k) = logsumexp_{j≠k} z_j − logsumexp_j z_j), so values agree with the
paper's equation and differ from the reference code only by those constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustlit.losses.trades import trades_kl


def largest_other_class(logits: Tensor, y: Tensor) -> Tensor:
    """argmax_{k≠y} of the logits (N,): the most likely wrong class (the reference's ``new_y``)."""
    masked = logits.detach().scatter(1, y.view(-1, 1), float("-inf"))
    return masked.argmax(dim=1)


def log_one_minus_prob(logits: Tensor, k: Tensor) -> Tensor:
    """log(1 − p_k) per example (N,), p = softmax(logits), computed as logsumexp_{j≠k} z_j − logsumexp_j z_j."""
    others = logits.scatter(1, k.view(-1, 1), float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def boosted_cross_entropy(logits_adv: Tensor, y: Tensor) -> Tensor:
    """BCE(p(x'), y) = −log p_y(x') − log(1 − max_{k≠y} p_k(x')) per example (Wang et al. 2020, eq. of BCE)."""
    ce = F.cross_entropy(logits_adv, y, reduction="none")
    return ce - log_one_minus_prob(logits_adv, largest_other_class(logits_adv, y))


def mart_terms(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """The two per-example terms of MART: (BCE(p(x'), y), β · KL(p(x) ‖ p(x')) · (1 − p_y(x)))."""
    p_true = logits_clean.softmax(dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    regulariser = beta * trades_kl(logits_clean, logits_adv) * (1.0 - p_true)
    return boosted_cross_entropy(logits_adv, y), regulariser


def mart_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """Per-example MART loss BCE(p(x'), y) + β · KL(p(x) ‖ p(x')) · (1 − p_y(x)); gradients reach both inputs."""
    bce, regulariser = mart_terms(logits_clean, logits_adv, y, beta)
    return bce + regulariser
