"""mix_log_probs and the mixing-network loss (Bai et al. 2023; docs/mixed_classifier.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlit.losses.mixture import mix_log_probs, mixing_bce_loss, mixing_network_loss

N, K = 64, 10


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return 3 * torch.randn(N, K, generator=gen), 3 * torch.randn(N, K, generator=gen)


def _direct(z_g: torch.Tensor, z_h: torch.Tensor, alpha: torch.Tensor, s_g: float, s_h: float) -> torch.Tensor:
    a = alpha.reshape(-1, 1) if alpha.dim() else alpha
    return torch.log((1 - a) * F.softmax(s_g * z_g, 1) + a * F.softmax(s_h * z_h, 1))


def test_alpha_zero_is_standard_and_alpha_one_is_robust(logits):
    z_g, z_h = logits
    assert (z_g.argmax(1) != z_h.argmax(1)).sum() > N // 2  # the two models disagree often
    for alpha in (0.0, torch.tensor(0.0), torch.zeros(N), torch.zeros(N, 1)):
        out = mix_log_probs(z_g, z_h, alpha, scale_std=1.3, scale_rob=0.7)
        assert torch.equal(out, F.log_softmax(1.3 * z_g, 1))
        assert torch.equal(out.argmax(1), z_g.argmax(1))
    for alpha in (1.0, torch.tensor(1.0), torch.ones(N), torch.ones(N, 1)):
        out = mix_log_probs(z_g, z_h, alpha, scale_std=1.3, scale_rob=0.7)
        assert torch.equal(out, F.log_softmax(0.7 * z_h, 1))
        assert torch.equal(out.argmax(1), z_h.argmax(1))


def test_probabilities_sum_to_one_and_match_the_direct_formula(logits):
    z_g, z_h = logits
    gen = torch.Generator().manual_seed(1)
    per_example = torch.rand(N, generator=gen)
    per_example[:3] = torch.tensor([0.0, 1.0, 0.5])
    cases = [0.0, 0.25, 1.0, torch.tensor(0.8), per_example, per_example[:, None]]
    for alpha in cases:
        out = mix_log_probs(z_g, z_h, alpha, 1.2, 0.5)
        assert out.shape == (N, K)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.exp().sum(1), torch.ones(N), atol=1e-5, rtol=0)
        a = torch.as_tensor(alpha, dtype=torch.float32)
        torch.testing.assert_close(out, _direct(z_g, z_h, a, 1.2, 0.5), atol=1e-5, rtol=1e-5)


def test_per_example_alpha_equals_scalar_alpha_row_by_row(logits):
    z_g, z_h = logits
    alphas = torch.linspace(0, 1, N)
    out = mix_log_probs(z_g, z_h, alphas)
    for i in (0, 5, N // 2, N - 1):
        torch.testing.assert_close(out[i], mix_log_probs(z_g[i : i + 1], z_h[i : i + 1], float(alphas[i]))[0])


@pytest.mark.parametrize("endpoint", [0.0, 1.0])
def test_no_nan_in_values_or_gradients_at_the_endpoints(logits, endpoint):
    z_g, z_h = (t.clone().requires_grad_(True) for t in logits)
    alpha = torch.full((N,), endpoint, requires_grad=True)
    out = mix_log_probs(z_g, z_h, alpha)
    y = torch.arange(N) % K
    F.nll_loss(out, y).backward()
    for t in (out, z_g.grad, z_h.grad, alpha.grad):
        assert torch.isfinite(t).all()
    # the unused model gets exactly zero gradient
    unused = z_h if endpoint == 0.0 else z_g
    assert torch.count_nonzero(unused.grad) == 0


def test_alpha_gradient_is_exact_inside_the_interval():
    gen = torch.Generator().manual_seed(2)
    z_g = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    z_h = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    alpha = (0.05 + 0.9 * torch.rand(5, generator=gen, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: mix_log_probs(z_g, z_h, a, 1.5, 0.8), (alpha,))


def test_half_precision_logits_are_mixed_in_float32(logits):
    z_g, z_h = logits
    out = mix_log_probs(z_g.half(), z_h.half(), 0.3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(1), torch.ones(N), atol=1e-5, rtol=0)


def test_invalid_alpha_is_rejected(logits):
    z_g, z_h = logits
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mix_log_probs(z_g, z_h, 1.5)
    with pytest.raises(ValueError, match="shape"):
        mix_log_probs(z_g, z_h, torch.rand(N, 2))
    with pytest.raises(ValueError, match="shape"):
        mix_log_probs(z_g, z_h[:, :3], 0.5)


def test_mixing_network_loss_matches_its_definition(logits):
    z_g, z_h = logits
    gen = torch.Generator().manual_seed(3)
    gamma = torch.randn(N, generator=gen)
    attacked = torch.rand(N, generator=gen) < 0.5
    y = torch.randint(0, K, (N,), generator=gen)
    out = mix_log_probs(z_g, z_h, torch.sigmoid(gamma))
    loss = mixing_network_loss(out, y, gamma, attacked, 1.5, 0.5, 0.3, clean_scale=2.0, adv_scale=0.7)
    ce = -out[torch.arange(N), y]
    bce = -(attacked * F.logsigmoid(gamma) + (~attacked) * F.logsigmoid(-gamma))
    scale = torch.where(attacked, 0.7, 2.0)
    expected = (scale * (1.5 * bce + 0.5 * ce + 0.3 * bce * ce)).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(mixing_bce_loss(gamma, attacked, reduction="none"), bce)


def test_bce_pushes_gamma_up_on_attacked_and_down_on_clean_inputs():
    gamma = torch.zeros(4, requires_grad=True)
    attacked = torch.tensor([True, True, False, False])
    mixing_bce_loss(gamma, attacked).backward()
    assert (gamma.grad[:2] < 0).all() and (gamma.grad[2:] > 0).all()
