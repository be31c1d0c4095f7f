"""Adaptive attacks on the mixture go through alpha (Bai et al. 2023; docs/mixed_classifier.md)."""

from __future__ import annotations

import pytest
import torch
from mixed_toys import Linear2, ToyDetector, tiny_dataset, tiny_module

from robustlit.mixed.adaptive_attack import AlphaExposed, adaptive_mixture_loss, adaptive_pgd_attack
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.training_attack import randomized_mixture_attack


def test_attack_gradient_reaches_alpha_and_the_mixing_network():
    mixture = tiny_module().mixture.eval()
    x, y = tiny_dataset(8)[:]
    x = x.clone().requires_grad_(True)
    log_probs, _, gamma = mixture.forward_with_alpha(x)
    # w = 1: the objective depends on x only through gamma (alpha), so a non-zero input gradient is the
    # gradient through alpha and the tapped features.
    loss = adaptive_mixture_loss(log_probs, gamma, y, 1.0).sum()
    (grad_x,) = torch.autograd.grad(loss, x, retain_graph=True)
    assert grad_x.abs().sum() > 0
    loss.backward()
    grads = [p.grad for p in mixture.mixing_network.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in mixture.standard.parameters())  # frozen base models


def test_adaptive_attack_pushes_alpha_down_and_respects_the_ball():
    mixture = tiny_module().mixture.eval()
    x, y = tiny_dataset(16)[:]
    with torch.no_grad():
        alpha_clean = mixture.forward_with_alpha(x)[1]
    x_adv = adaptive_pgd_attack(mixture, x, y, eps=0.2, step_size=0.05, steps=5, bce_weight=1.0)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        alpha_adv = mixture.forward_with_alpha(x_adv)[1]
    assert (alpha_adv < alpha_clean).all()  # every example: the attack lowered alpha
    assert all(not m.training for m in mixture.modules())  # attack_mode leaves eval mode as it was


def _toy_mixture() -> MixedClassifier:
    """Label 0 everywhere. g is right iff x1 < 0.5 (confident, fooled by eps 0.1); h always says 0 with
    margin 1 (robust); the detector trusts h on the clean data (alpha ~ 0.88) and reads only x2, so
    the attack must also move x2 to switch the mixture over to g."""
    g = Linear2([[-100.0, 0.0], [0.0, 0.0]], [50.0, 0.0])
    h = Linear2([[0.0, 0.0], [0.0, 0.0]], [1.0, 0.0])
    return MixedClassifier(g, h, mixing_network=ToyDetector(20.0, 2.0), standard_layers=["inp"])


def test_adaptive_attack_beats_plain_pgd_when_alpha_matters():
    mixture = _toy_mixture()
    gen = torch.Generator().manual_seed(0)
    x = torch.stack([0.44 + 0.02 * torch.rand(64, generator=gen), 0.49 + 0.02 * torch.rand(64, generator=gen)], 1)
    y = torch.zeros(64, dtype=torch.long)

    def robust_acc(w: float) -> float:
        torch.manual_seed(0)
        x_adv = adaptive_pgd_attack(mixture, x, y, eps=0.1, step_size=0.025, steps=10, bce_weight=w, bounds=None)
        with torch.no_grad():
            return (mixture(x_adv).argmax(dim=1) == y).float().mean().item()

    with torch.no_grad():
        assert (mixture(x).argmax(dim=1) == y).all()
    plain, adaptive = robust_acc(0.0), min(robust_acc(0.25), robust_acc(0.5))
    # Plain PGD on the mixture's CE first pushes alpha *up* (g is more confident than h at the start)
    # and leaves part of the examples robust; pushing alpha down breaks (nearly) all of them.
    assert plain >= 0.2
    assert adaptive <= plain - 0.15


def test_randomized_attack_stays_in_its_random_balls():
    mixture = tiny_module().mixture.eval()
    x, y = tiny_dataset(32)[:]
    gen = torch.Generator().manual_seed(0)
    x_adv = randomized_mixture_attack(
        mixture, x, y, eps=0.2, eps_scale=(0.4, 1.1), steps=(1, 3), copies=2, generator=gen
    )
    assert x_adv.shape == (64, *x.shape[1:])
    size = (x_adv - x.repeat(2, 1, 1, 1)).flatten(1).abs().amax(dim=1)
    assert size.max() <= 0.2 * 1.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert size.max() - size.min() > 0.05  # examples drew different radii
    with pytest.raises(ValueError, match="eps_scale"):
        randomized_mixture_attack(mixture, x, y, eps=0.2, eps_scale=(1.0, 0.5))


def test_adaptive_attacks_need_a_mixture():
    with pytest.raises(TypeError, match="forward_with_alpha"):
        AlphaExposed(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="bce_weight"):
        adaptive_mixture_loss(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, dtype=torch.long), 1.5)


def test_training_attacks_use_the_training_head():
    # training head: gamma = 0.001 * bn + 5 (> 0); eval head: gamma = 0.001 * bn - 5 (< 0)
    module = tiny_module(gamma_scale=0.001, gamma_bias=5.0, eval_gamma_scale=0.001, eval_gamma_bias=-5.0)
    module.train()
    seen: list[torch.Tensor] = []
    hook = module.mixture.mixing_network.register_forward_hook(lambda m, i, out: seen.append(out[1].detach()))
    x, y = tiny_dataset(8)[:]
    module.adversarial_examples(x, y)
    hook.remove()
    gammas = torch.cat(seen)
    assert len(seen) > 2 and (gammas > 4).all(), gammas.min()
    # and the same mixture in eval mode outside the attack uses the eval head (the hook can see it)
    module.eval()
    with torch.no_grad():
        assert (module.mixture.forward_with_alpha(x)[2] < -4).all()
    assert module.mixture.gamma_head is None and module.mixture.compress_alpha is None
