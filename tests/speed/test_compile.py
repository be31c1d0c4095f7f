"""``compile`` and ``channels_last`` on RobustClassifier (docs/speed.md): the compiled classifier has no graph
break, and compiled and eager training attacks give the same adversarial examples within float tolerance."""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest
import torch

from robustlit.methods import PGDAT, TRADES
from robustlit.models import SmallCNN

inductor_needs_compiler = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="torch.compile's inductor backend needs a C compiler on CPU",
)


def _trades(**options: object) -> TRADES:
    torch.manual_seed(0)
    backbone = SmallCNN(10, 1, width=4, hidden=16)
    kwargs = {"eps": 0.2, "step_size": 0.05, "steps": 5} | options
    return TRADES(backbone=backbone, mean=(0.3,), std=(0.38,), **kwargs)


def _pgd_at(**options: object) -> PGDAT:
    torch.manual_seed(0)
    backbone = SmallCNN(10, 1, width=4, hidden=16)
    with torch.no_grad():  # doubled weights: the untrained model's loss then varies within the ball
        for param in backbone.parameters():
            param.mul_(2.0)
    kwargs = {"eps": 0.5, "step_size": 0.2, "steps": 5, "norm": "L2"} | options
    return PGDAT(backbone=backbone, mean=(0.3,), std=(0.38,), **kwargs)


def test_options_keep_state_dict_keys_and_memory_format() -> None:
    eager, fast = _trades(), _trades(channels_last=True, compile=True, compile_kwargs={"backend": "eager"})
    fast.configure_model()
    fast.configure_model()  # idempotent
    assert list(fast.state_dict()) == list(eager.state_dict())
    conv = [m for m in fast.classifier.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # > 1 input channel
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    assert fast.memory_format(torch.rand(2, 1, 8, 8)).is_contiguous(memory_format=torch.channels_last)


@inductor_needs_compiler
def test_compiled_training_attack_matches_eager() -> None:
    """Same seed, same start: the inductor-compiled classifier's training attacks equal the eager ones.

    PGD-AT, L2 (steps along grad / ||grad||, continuous in the gradient, from a uniform start where the
    cross-entropy gradient is well away from 0): the iterates agree within float error. TRADES starts at
    x + 0.001 N(0, I), where the KL and its gradient are at float-noise level, so the first direction is
    float noise in both (measured: 0.0055 apart after 5 L2 steps) and the paths part; and a Linf step
    takes sign(grad), where an entry within float error of 0 can flip. For Linf the check is the attack objective
    (cross-entropy) reached.
    """
    torch._dynamo.reset()
    eager, compiled = _pgd_at(), _pgd_at(compile=True)
    compiled.configure_model()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    explanation = torch._dynamo.explain(eager.classifier)(x)  # what compile traces: the whole forward, one graph
    assert explanation.graph_break_count == 0, explanation.break_reasons

    start = time.perf_counter()
    torch.manual_seed(1)
    x_adv_compiled = compiled.adversarial_examples(x, y)
    seconds = time.perf_counter() - start
    torch.manual_seed(1)
    x_adv_eager = eager.adversarial_examples(x, y)
    assert (x_adv_eager - x).flatten(1).norm(dim=1).max() > 0.25  # the attack moved
    torch.testing.assert_close(x_adv_compiled, x_adv_eager, rtol=0, atol=1e-4)

    ce = []
    for model in (eager, compiled):  # Linf: same graphs (the norm is outside the model), same objective reached
        model.threat_model = dataclasses.replace(model.threat_model, norm="Linf", eps=0.2, step_size=0.05)
        torch.manual_seed(2)
        x_adv = model.adversarial_examples(x, y)
        with torch.no_grad():
            ce.append(float(torch.nn.functional.cross_entropy(eager.classifier(x_adv), y)))
    with torch.no_grad():
        clean = float(torch.nn.functional.cross_entropy(eager.classifier(x), y))
    assert ce[0] > clean + 0.05, (clean, ce)
    assert abs(ce[0] - ce[1]) <= 0.01 * ce[0], ce
    print(f"compiled attack incl. compilation: {seconds:.1f}s")
