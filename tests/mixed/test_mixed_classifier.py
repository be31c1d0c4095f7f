"""FeatureTap, MixingNetwork and MixedClassifier (Bai et al. 2023; docs/mixed_classifier.md)."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.feature_tap import FeatureTap
from robustlit.mixed.loss import mixing_bce_loss, mixing_network_loss
from robustlit.mixed.mixing_network import MixingNetwork
from robustlit.mixed.mixing_rule import mix_log_probs

K = 5


def _base_model(seed: int, width: int) -> nn.Module:
    """A tiny CNN with batch norm (so that train/eval mode matters) on 1x8x8 inputs."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, width, 3, padding=1),
            bn1=nn.BatchNorm2d(width),
            act1=nn.ReLU(),
            conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            act2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(2 * width, K),
        )
    )
    # non-trivial running statistics, so that train-mode BN would give different outputs
    model.bn1.running_mean.uniform_(-0.5, 0.5)
    model.bn1.running_var.uniform_(0.5, 2.0)
    return model


def _mixed(**kwargs) -> MixedClassifier:
    std, rob = _base_model(0, 4), _base_model(1, 6)
    torch.manual_seed(2)
    net = MixingNetwork([4, 8, 6, 12], width=8, **kwargs)
    return MixedClassifier(
        std, rob, mixing_network=net, standard_layers=["act1", "act2"], robust_layers=["act1", "conv2"]
    )


def _inputs(n: int = 16, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, K, (n,), generator=gen)


def test_feature_tap_error_names_available_layers():
    model = _base_model(0, 4)
    with pytest.raises(KeyError) as info:
        FeatureTap(model, ["act1", "layer9"])
    message = str(info.value)
    assert "layer9" in message
    for name in ("conv1", "bn1", "conv2", "fc"):
        assert repr(name) in message


def test_feature_tap_collects_outputs_in_order_and_removes_hooks():
    model = _base_model(0, 4).eval()
    x, _ = _inputs()
    with FeatureTap(model, ["act2", "conv1"]) as tap:
        model(x)
        act2, conv1 = tap.features
    torch.testing.assert_close(conv1, model.conv1(x))
    torch.testing.assert_close(act2, model[:5](x))
    assert act2.shape == (16, 8, 4, 4)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    tap = FeatureTap(model, ["fc"])
    with pytest.raises(RuntimeError, match="did not run"):
        _ = tap.features
    tap.remove()


def test_feature_tap_rejects_non_tensor_outputs():
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    model = nn.Sequential(OrderedDict(pair=Pair()))
    with FeatureTap(model, ["pair"]), pytest.raises(TypeError, match="pair"):
        model(torch.zeros(1))


def test_mixing_network_handles_mixed_shapes_and_checks_channels():
    net = MixingNetwork([3, 5, 7], width=4)
    feats = [torch.randn(6, 3, 8, 8), torch.randn(6, 5, 4, 2), torch.randn(6, 7)]
    alpha, gamma = net(feats)
    assert alpha.shape == gamma.shape == (6,)
    torch.testing.assert_close(alpha, torch.sigmoid(gamma))  # train mode: no compression
    with pytest.raises(ValueError, match="feature 1"):
        net([feats[0], torch.randn(6, 4, 4, 4), feats[2]])
    with pytest.raises(ValueError, match="expected 3 features"):
        net(feats[:2])


def test_eval_mode_compresses_alpha_and_uses_eval_gamma_head():
    torch.manual_seed(0)
    net = MixingNetwork(
        [3],
        width=4,
        gamma_scale=2.0,
        gamma_bias=0.4,
        eval_gamma_scale=3.0,
        eval_gamma_bias=1.0,
        alpha_min=0.2,
        alpha_max=0.95,
    ).eval()
    feats = [torch.randn(32, 3, 4, 4)]
    alpha, gamma = net(feats)
    assert (alpha >= 0.2).all() and (alpha <= 0.95).all()
    torch.testing.assert_close(alpha, 0.2 + 0.75 * torch.sigmoid(gamma))
    torch.testing.assert_close(gamma, net.score(feats) * 3.0 + 1.0)  # BN at init: mean 0, var 1 (+eps)
    raw_alpha, _ = net(feats, compress=False)
    torch.testing.assert_close(raw_alpha, torch.sigmoid(gamma))


def test_training_mode_clamps_the_raw_score_then_batch_normalises():
    torch.manual_seed(0)
    net = MixingNetwork([3], width=4, gamma_scale=2.0, gamma_bias=0.4, train_clamp_std=0.6)
    feats = [torch.randn(64, 3, 4, 4)]
    raw = net.score(feats).detach()
    lo, hi = raw.mean() - 0.6 * raw.std(), raw.mean() + 0.6 * raw.std()
    assert ((raw < lo) | (raw > hi)).any()  # the clamp does something here
    clamped = raw.clamp(lo, hi)
    normed = (clamped - clamped.mean()) / torch.sqrt(clamped.var(unbiased=False) + net.bn.eps)
    _, gamma = net(feats)
    torch.testing.assert_close(gamma, normed * 2.0 + 0.4, atol=1e-5, rtol=1e-5)


def _raw_score_gradient(net: MixingNetwork, raw: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """Gradient of the detector BCE with respect to the raw score, in training mode (score fed directly)."""
    raw = raw.clone().requires_grad_(True)
    net.score = lambda features: raw  # the head (clamp, batch norm, scale and bias) is what is tested
    _, gamma = net([torch.zeros(len(raw), 3)])
    mixing_bce_loss(gamma, attacked).backward()
    return raw.grad


def test_training_clamp_keeps_the_gradient_of_examples_outside_its_bounds():
    # Regression: with torch.clamp's own gradient (the reference code's), an example whose raw score lies
    # outside batch mean +- 0.6 std got no gradient at all, and those are the examples on the wrong side: an
    # attacked input whose gamma the training attack pushed down, a clean input scored high. On the trade-off
    # digits the detector then never learned (docs/mixed_classifier.md).
    torch.manual_seed(0)
    attacked = torch.arange(64) % 2 == 0
    raw = torch.randn(64)
    raw[0], raw[1] = -5.0, 5.0  # an attacked example scored far too low, a clean one far too high
    lo, hi = raw.mean() - 0.6 * raw.std(), raw.mean() + 0.6 * raw.std()
    outside = (raw < lo) | (raw > hi)
    assert outside[0] and outside[1] and outside.sum() > 10
    grad = _raw_score_gradient(MixingNetwork([3], width=4, train_clamp_std=0.6), raw, attacked)
    assert grad[0] < 0 and grad[1] > 0  # gradient descent raises the attacked score and lowers the clean one
    assert (grad[outside] != 0).all()
    # the reference code's gradient, still available: nothing reaches the examples outside the bounds
    reference = _raw_score_gradient(MixingNetwork([3], width=4, clamp_gradient="zero"), raw, attacked)
    assert (reference[outside] == 0).all() and (reference[~outside] != 0).any()
    # forward values are the same either way (the batch norm sees the clamped scores)
    torch.manual_seed(1)
    feats = [torch.randn(32, 3, 4, 4)]
    straight, zero = MixingNetwork([3], width=4), MixingNetwork([3], width=4, clamp_gradient="zero")
    zero.load_state_dict(straight.state_dict())
    torch.testing.assert_close(straight(feats)[1], zero(feats)[1])
    with pytest.raises(ValueError, match="clamp_gradient"):
        MixingNetwork([3], clamp_gradient="identity")


def test_base_models_stay_in_eval_mode_and_frozen():
    mc = _mixed()
    mc.train()
    assert mc.training and mc.mixing_network.training
    for base in (mc.standard, mc.robust):
        assert all(not m.training for m in base.modules())
        assert all(not p.requires_grad for p in base.parameters())
    mc.requires_grad_(True)
    assert all(not p.requires_grad for p in mc.standard.parameters())
    assert all(p.requires_grad for p in mc.mixing_network.parameters())

    x, y = _inputs()
    running = mc.standard.bn1.running_mean.clone()
    log_probs, alpha, gamma = mc.forward_with_alpha(x)
    mixing_network_loss(log_probs, y, gamma, torch.arange(16) % 2 == 0).backward()
    assert torch.equal(mc.standard.bn1.running_mean, running)  # base BN statistics untouched
    for base in (mc.standard, mc.robust):
        assert all(p.grad is None for p in base.parameters())
    grads = [p.grad for p in mc.mixing_network.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_output_is_a_log_probability_mixture_of_the_base_models():
    mc = _mixed(alpha_min=0.1, alpha_max=0.9).eval()
    x, _ = _inputs()
    log_probs, alpha, _ = mc.forward_with_alpha(x)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(16))
    expected = mix_log_probs(mc.standard(x), mc.robust(x), alpha)
    torch.testing.assert_close(log_probs, expected)
    torch.testing.assert_close(mc(x), log_probs)


def test_constant_alpha_endpoints_predict_as_the_base_models():
    mc = _mixed().eval()
    x, _ = _inputs(64)
    pred_std, pred_rob = mc.standard(x).argmax(1), mc.robust(x).argmax(1)
    assert (pred_std != pred_rob).any()
    mc.set_constant_alpha(0.0)
    out, alpha, gamma = mc.forward_with_alpha(x)
    assert torch.equal(out.argmax(1), pred_std) and (alpha == 0).all() and (gamma == -torch.inf).all()
    mc.set_constant_alpha(1.0)
    assert torch.equal(mc(x).argmax(1), pred_rob)
    mc.set_constant_alpha(0.3)
    torch.testing.assert_close(mc(x), mix_log_probs(mc.standard(x), mc.robust(x), 0.3))
    mc.set_constant_alpha(None)  # back to the mixing network
    assert not torch.allclose(mc.forward_with_alpha(x)[1], torch.full((64,), 0.3))
    with pytest.raises(ValueError):
        mc.set_constant_alpha(1.2)
    only_constant = MixedClassifier(_base_model(0, 4), _base_model(1, 6), alpha=0.5)
    with pytest.raises(ValueError, match="no mixing network"):
        only_constant.set_constant_alpha(None)


def test_attack_gradients_reach_the_mixing_network():
    """The input gradient through alpha alone is non-zero, also with all parameters frozen."""
    mc = _mixed(alpha_min=0.05, alpha_max=0.95).eval()
    mc.requires_grad_(False)  # what the attack context does
    x, y = _inputs()
    x.requires_grad_(True)
    log_probs, alpha, _ = mc.forward_with_alpha(x)
    with torch.no_grad():  # base-logit path held fixed: only alpha depends on x
        z_g, z_h = mc.standard(x), mc.robust(x)
    loss_through_alpha = F.nll_loss(mix_log_probs(z_g, z_h, alpha), y)
    through_alpha = torch.autograd.grad(loss_through_alpha, x, retain_graph=True)[0]
    assert through_alpha.abs().sum() > 0
    full = torch.autograd.grad(F.nll_loss(log_probs, y), x, retain_graph=True)[0]
    alpha_detached = mix_log_probs(mc.standard(x), mc.robust(x), alpha.detach())
    without_alpha = torch.autograd.grad(F.nll_loss(alpha_detached, y), x)[0]
    torch.testing.assert_close(full, without_alpha + through_alpha, atol=1e-6, rtol=1e-4)
    assert (full - without_alpha).abs().max() > 1e-6


def test_tapped_features_are_not_detached():
    mc = _mixed().eval()
    x, _ = _inputs()
    x.requires_grad_(True)
    _, alpha, _ = mc.forward_with_alpha(x)
    grad = torch.autograd.grad(alpha.sum(), x)[0]
    assert grad.abs().sum() > 0


def test_construction_checks():
    std, rob = _base_model(0, 4), _base_model(1, 6)
    with pytest.raises(ValueError, match="constant alpha or a mixing_network"):
        MixedClassifier(std, rob)
    with pytest.raises(ValueError, match="2 layers are tapped"):
        MixedClassifier(
            std,
            rob,
            mixing_network=MixingNetwork([4, 8, 6]),
            standard_layers=["act1"],
            robust_layers=["act1"],
        )
    with pytest.raises(KeyError, match="block1"):
        MixedClassifier(
            std, rob, mixing_network=MixingNetwork([4, 6]), standard_layers=["act1"], robust_layers=["block1"]
        )


def test_deepcopy_and_state_dict_round_trip():
    mc = _mixed(eval_gamma_bias=1.3).eval()
    x, _ = _inputs()
    clone = copy.deepcopy(mc)
    torch.testing.assert_close(clone(x), mc(x))
    assert all(len(m._forward_hooks) == 0 for m in mc.modules())
    fresh = _mixed()
    fresh.load_state_dict(mc.state_dict())
    assert float(fresh.mixing_network.eval_gamma_bias) == pytest.approx(1.3)
    torch.testing.assert_close(fresh.eval()(x), mc(x))
