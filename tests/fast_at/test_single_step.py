"""Single-step examples (FGSM, FGSM-RS, N-FGSM) and the cyclic learning rate (docs/fast_adversarial_training.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from undefended import held_out, undefended_small_cnn

from robustlit.attacks.single_step import single_step_example
from robustlit.callbacks import CatastrophicOverfittingGuard
from robustlit.callbacks.cyclic_lr import triangular_factor
from robustlit.methods import FastAdversarialTraining
from robustlit.models import SmallCNN, WongMNISTNet


def _ce(y: torch.Tensor):
    return lambda logits: F.cross_entropy(logits, y, reduction="none")


@pytest.mark.parametrize("variant", ["fgsm", "fgsm_rs", "n_fgsm"])
def test_variants_stay_where_their_papers_put_them(variant: str) -> None:
    model, (x, y) = undefended_small_cnn(), held_out(200)
    method = FastAdversarialTraining(eps=0.1, variant=variant, backbone=SmallCNN(width=8))
    method.classifier = torch.nn.Sequential(torch.nn.Identity(), model)
    x_adv = method.adversarial_examples(x, y)
    distance = (x_adv - x).abs().flatten(1).amax(1)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if variant == "n_fgsm":  # noise 2 eps + step eps, not projected: beyond eps, within 3 eps
        assert distance.max() <= 0.3 + 1e-6 and distance.max() > 0.1 + 1e-3
    else:
        assert distance.max() <= 0.1 + 1e-6
    with torch.no_grad():
        accuracy = (model(x_adv).argmax(1) == y).float().mean().item()
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert clean > 0.9 and accuracy < clean - 0.2, f"{variant} did not attack an undefended model: {accuracy}"


def test_fgsm_without_noise_is_the_sign_of_the_gradient() -> None:
    model, (x, y) = undefended_small_cnn(), held_out(50)
    x_adv = single_step_example(model, x, _ce(y), eps=0.1, step_size=0.1, noise=0.0)
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    assert torch.allclose(x_adv, (x + 0.1 * grad.sign()).clamp(0, 1))


def test_the_start_is_clipped_only_when_asked() -> None:
    """Wong et al.'s MNIST code takes the gradient at x + U(-eps, eps) unclipped; clip_start clips it first."""
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach().clone())
            return x.flatten(1)[:, :3] * 1.0

    x, y = torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    for clip_start in (False, True):
        seen.clear()
        single_step_example(Spy(), x, _ce(y), eps=0.3, step_size=0.375, noise=0.3, clip_start=clip_start)
        assert (seen[0].min() < 0) is not clip_start


def test_fast_at_refuses_what_it_does_not_do() -> None:
    with pytest.raises(ValueError, match="variant"):
        FastAdversarialTraining(variant="pgd", backbone=SmallCNN(width=8))
    with pytest.raises(ValueError, match="Linf"):
        FastAdversarialTraining(norm="L2", backbone=SmallCNN(width=8))
    method = FastAdversarialTraining(eps=0.3, backbone=WongMNISTNet())
    assert method.threat_model.step_size == pytest.approx(0.375) and method.threat_model.steps == 1
    assert (method.noise_scale, method.clip_to_eps, method.clip_start) == (1.0, True, False)


def test_fast_at_and_its_guard_take_radii_as_fractions() -> None:
    """``eps: 8/255`` is exact (the FGSM-RS step is 1.25 * 8/255 to the last bit) and keeps its spelling; the guard's
    own radius is held to the Linf range like every other radius (8, not 8/255, is refused)."""
    method = FastAdversarialTraining(eps="8/255", backbone=SmallCNN(width=8))
    assert str(method.threat_model.eps) == "8/255" and method.threat_model.step_size == 1.25 * (8 / 255)
    assert str(CatastrophicOverfittingGuard(eps="8/255").eps) == "8/255"
    with pytest.raises(ValueError, match=r"CatastrophicOverfittingGuard.eps: .*outside the Linf range"):
        CatastrophicOverfittingGuard(eps=8)


def test_triangular_schedule_is_the_authors_interpolation() -> None:
    total, peak = 100, 0.4
    values = [triangular_factor(s, total, peak) for s in range(total)]
    assert values[39] == pytest.approx(1.0) and values[-1] == pytest.approx(0.0)
    assert values[0] == pytest.approx(0.01 / 0.4) and values[69] == pytest.approx(0.3 / 0.6)
    assert all(a < b for a, b in zip(values[:39], values[1:40], strict=True))
    assert all(a > b for a, b in zip(values[39:-1], values[40:], strict=True))


def test_wong_network_shapes() -> None:
    assert WongMNISTNet()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert WongMNISTNet(input_size=8)(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_fast_at_composes_with_the_weighting_hook() -> None:
    """MAIL's weights and GAIRAT's kappa on single-step examples (docs/reweighting.md)."""
    from robustlit.losses import GAIRATWeights, MAILWeights

    (x, y), backbone = held_out(64), SmallCNN(width=8)
    mail = FastAdversarialTraining(eps=0.1, backbone=backbone, weighting=MAILWeights())
    terms = mail.loss_terms(x, y)
    weights = mail.robust_term_weights(terms)
    assert weights.shape == (64,) and not torch.allclose(weights, torch.ones_like(weights))
    loss = mail.training_loss(x, y)
    assert torch.isfinite(loss) and mail.last_weights is not None
    gairat = FastAdversarialTraining(eps=0.1, backbone=backbone, weighting=GAIRATWeights())
    terms = gairat.loss_terms(x, y)
    assert terms.attack_steps == 1 and set(terms.kappa.unique().tolist()) <= {0.0, 1.0}
    assert gairat.robust_term_weights(terms).mean().item() == pytest.approx(1.0, abs=1e-5)
