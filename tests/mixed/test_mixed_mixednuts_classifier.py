"""MixedNUTS as a classifier: switched-off transform, surrogate gradients, calibration, CLI-style evaluation
(Bai et al. 2024; docs/mixed_classifier.md)."""

from __future__ import annotations

import pytest
import torch
from mixed_toys import K, tiny_base, tiny_dataset, tiny_loader
from torch import nn

from robustlit.attacks.spec import AttackSpec
from robustlit.mixed.apgd import mixture_apgd
from robustlit.mixed.classifier import MixedClassifier
from robustlit.mixed.mixednuts import mixednuts_log_probs
from robustlit.mixed.mixednuts_classifier import MixedNUTSClassifier
from robustlit.mixed.mixednuts_module import MixedNUTSModule


class Constant(nn.Module):
    """Logits that do not depend on the input (zero input gradient everywhere)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0 * x.flatten(1)[:, :1]


def test_transform_switched_off_equals_the_constant_alpha_mixture():
    x, _ = tiny_dataset(16)[:]
    for alpha in (0.0, 0.3, 0.8, 1.0):
        nuts = MixedNUTSClassifier(tiny_base(0, 4), tiny_base(1, 6), s=3.0, c=0.5, p=2.0, alpha=alpha, transform=False)
        constant = MixedClassifier(tiny_base(0, 4), tiny_base(1, 6), alpha=alpha)
        with torch.no_grad():
            torch.testing.assert_close(nuts(x), constant(x))
    # switched on, it is the exact MixedNUTS map (hard max of g, transformed h), which differs
    nuts = MixedNUTSClassifier(tiny_base(0, 4), tiny_base(1, 6), s=3.0, c=0.5, p=2.0, alpha=0.6)
    with torch.no_grad():
        expected = mixednuts_log_probs(tiny_base(0, 4)(x), tiny_base(1, 6)(x), 3.0, 0.5, 2.0, 0.6)
        torch.testing.assert_close(nuts(x), expected)
        assert not torch.allclose(nuts(x), MixedClassifier(tiny_base(0, 4), tiny_base(1, 6), alpha=0.6)(x))


def test_surrogate_has_gradients_where_the_exact_transform_has_none():
    # h constant: every input gradient of the exact MixedNUTS output goes through g's hard max, i.e. is zero
    robust = Constant(torch.tensor([[2.0, 1.0, 0.5, -1.0]]))
    nuts = MixedNUTSClassifier(tiny_base(0, 4), robust, s=2.0, c=0.0, p=1.0, alpha=0.5, surrogate_temperature=1.0)
    x, y = tiny_dataset(8)[:]

    def gradient(surrogate: bool) -> torch.Tensor:
        point = x.clone().requires_grad_(True)
        log_probs = nuts.forward_with_alpha(point, surrogate=surrogate)[0]
        (grad,) = torch.autograd.grad(log_probs.gather(1, y[:, None]).sum(), point)
        return grad

    assert torch.count_nonzero(gradient(False)) == 0
    surrogate = gradient(True)
    assert (surrogate.flatten(1).abs().sum(dim=1) > 0).all()


def test_surrogate_attack_breaks_what_the_exact_gradient_cannot_touch():
    # g carries the decision (alpha small, h constant): an attack on exact gradients cannot move the hard max
    robust = Constant(torch.zeros(1, K))
    torch.manual_seed(0)
    standard = nn.Sequential(nn.Flatten(), nn.Linear(64, K))  # an undefended linear model
    nuts = MixedNUTSClassifier(standard, robust, alpha=0.2, surrogate_temperature=1.0).eval()
    x, y = tiny_dataset(32)[:]
    with torch.no_grad():
        y = nuts(x).argmax(dim=1)  # labels = clean predictions: clean accuracy 1

    def acc(surrogate: bool) -> float:
        torch.manual_seed(0)
        x_adv = mixture_apgd(nuts, x, y, eps=0.2, steps=20, surrogate=surrogate)
        with torch.no_grad():
            return (nuts(x_adv).argmax(dim=1) == y).float().mean().item()

    exact, surrogate = acc(False), acc(True)
    # exact gradients are zero: only the random start flips a few; the surrogate breaks nearly all
    assert surrogate <= 0.1 and surrogate <= exact - 0.5, (exact, surrogate)


def test_mixednuts_module_calibrates_on_the_validation_split_and_keeps_it_in_the_state_dict(tmp_path):
    module = MixedNUTSModule(
        standard=tiny_base(0, 4),
        robust=tiny_base(1, 6),
        num_classes=K,
        calibration_attack=AttackSpec("apgd", "Linf", 0.05, 5),
        calibration_autoattack=False,
        s_grid=[1.0, 2.0],
        c_grid=[0.0, 0.5],
        p_grid=[1.0, 2.0],
    )
    assert not bool(module.mixture.calibrated)
    set_a, set_b = module.calibration_sets(tiny_loader(32, 16))
    x, y = tiny_dataset(32)[:]
    with torch.no_grad():
        wrong = (module.mixture.robust(x).argmax(dim=1) != y).sum().item()
    assert len(set_b) == wrong and len(set_a) <= len(y) - wrong and len(set_a) > 0
    result = module.calibrate(tiny_loader(32, 16))
    assert bool(module.mixture.calibrated)
    assert module.mixture.alpha == pytest.approx(result["alpha"])
    assert float(module.mixture.s) == result["s"] and float(module.mixture.p) == result["p"]
    state = module.state_dict()
    fresh = MixedNUTSModule(standard=tiny_base(0, 4), robust=tiny_base(1, 6), num_classes=K)
    assert not bool(fresh.mixture.calibrated)
    fresh.load_state_dict(state)
    assert bool(fresh.mixture.calibrated) and fresh.mixture.alpha == pytest.approx(result["alpha"])
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), module(x))
    with pytest.raises(ValueError, match="training-free"):
        module.configure_optimizers()


def test_calibration_set_a_holds_logits_at_the_minimum_margin_iterate_not_the_clean_logits():
    """Regression: torchattacks' APGD returns the clean input for every example it fails to fool, so set (a) held h's
    clean logits. The authors keep each example's minimum-margin iterate of APGD-CE and APGD-T."""
    from robustlit.mixed.apgd import probability_margin

    module = MixedNUTSModule(
        standard=tiny_base(0, 4), robust=tiny_base(1, 6), num_classes=K,
        calibration_attack=AttackSpec("apgd", "Linf", 0.02, 10), calibration_targets=3, calibration_autoattack=False,
    )  # fmt: skip
    set_a, _ = module.calibration_sets(tiny_loader(32, 16))
    x, y = tiny_dataset(32)[:]
    with torch.no_grad():
        clean = module.mixture.robust(x)
    correct = clean.argmax(dim=1) == y
    assert 0 < len(set_a) <= int(correct.sum())
    # no row of set (a) is a clean logit row, and every margin lies below the smallest clean margin it could come from
    distance = torch.cdist(set_a.double(), clean.double())
    assert distance.min() > 1e-6, "set (a) holds h's clean logits"
    margins_a = probability_margin(torch.log_softmax(set_a, 1), set_a.argmax(1))
    clean_margins = probability_margin(torch.log_softmax(clean[correct], 1), y[correct])
    assert margins_a.mean() < clean_margins.mean()


def test_calibration_drops_the_examples_autoattack_breaks():
    from torch.utils.data import DataLoader, TensorDataset

    robust = tiny_base(1, 6, num_classes=10)  # standard AutoAttack needs 10 classes (APGD-T's 9 targets)
    x, _ = tiny_dataset(32)[:]
    with torch.no_grad():
        y = robust(x).argmax(dim=1)  # h right on every example
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    sets = {}
    for autoattack in (False, True):
        module = MixedNUTSModule(
            standard=tiny_base(0, 4, num_classes=10), robust=robust, num_classes=10,
            calibration_attack=AttackSpec("apgd", "Linf", 0.01, 10), calibration_autoattack=autoattack,
        )  # fmt: skip
        sets[autoattack] = module.calibration_sets(loader)[0]
    assert len(sets[True]) <= len(sets[False]) and len(sets[True]) > 0
    # the examples kept are a subset: each row with AutoAttack is a row without it
    assert torch.cdist(sets[True].double(), sets[False].double()).min(dim=1).values.max() < 1e-9


def test_a_robustness_budget_sets_the_keep_fraction_from_the_share_of_robust_calibration_examples():
    module = MixedNUTSModule(
        standard=tiny_base(0, 4), robust=tiny_base(1, 6), num_classes=K, robustness_budget=0.05,
        calibration_attack=AttackSpec("apgd", "Linf", 0.02, 5), calibration_targets=2, calibration_autoattack=False,
        s_grid=[1.0, 2.0], c_grid=[0.0], p_grid=[1.0],
    )  # fmt: skip
    result = module.calibrate(tiny_loader(32, 16))
    assert result["calibration_examples"] == 32 and result["set_a"] > 0
    # giving up 5 points of robust accuracy on 32 examples = 1.6 of the set-(a) examples
    assert result["keep_fraction"] == pytest.approx(1 - 0.05 * 32 / result["set_a"])
    with pytest.raises(ValueError, match="robustness_budget"):
        MixedNUTSModule(standard=tiny_base(0, 4), robust=tiny_base(1, 6), num_classes=K, robustness_budget=1.5)


def test_calibration_attack_must_name_apgd():
    with pytest.raises(ValueError, match="name must be 'apgd'"):
        MixedNUTSModule(
            standard=tiny_base(0, 4), robust=tiny_base(1, 6), num_classes=K,
            calibration_attack=AttackSpec("pgd", "Linf", 0.05, 5),
        )  # fmt: skip


def test_mixture_evaluation_attacks_mixednuts_through_its_surrogate():
    from torch.utils.data import TensorDataset

    from robustlit.mixed.evaluation import MixtureEvaluation

    torch.manual_seed(0)
    standard = nn.Sequential(nn.Flatten(), nn.Linear(64, K))
    nuts = MixedNUTSClassifier(standard, Constant(torch.zeros(1, K)), alpha=0.2, surrogate_temperature=1.0).eval()
    x, _ = tiny_dataset(32)[:]
    with torch.no_grad():
        y = nuts(x).argmax(dim=1)
    evaluation = MixtureEvaluation(
        attacks=[AttackSpec("pgd", "Linf", 0.2, 10)], bce_weights=[0.0], adaptive_targets=2, sweep_alphas=[0.0]
    )
    summary = evaluation.evaluate(nuts, TensorDataset(x, y), K, (0.0, 1.0), torch.device("cpu"))
    mixture = summary["models"]["mixture"]
    assert mixture["clean_acc"] == 1.0
    # plain PGD sees zero gradients through the hard max; the adaptive (surrogate) attacks do not
    assert mixture["robust_acc"]["pgd10_linf_0.2"] >= 0.5
    assert mixture["robust_acc"]["adaptive_apgd10_linf_0.2"] <= 0.1
    assert mixture["worst_robust_acc"] <= 0.1
    assert summary["sweep"]["points"][0]["robust_acc"] <= 0.1  # alpha = 0 (pure hard max): surrogate too
    assert nuts.alpha == 0.2  # the sweep restored the calibrated alpha
