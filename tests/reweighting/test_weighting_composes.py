"""Reweighting composes with any objective through one hook (robust_term_weights / weighting)."""

from __future__ import annotations

import importlib.util
import inspect
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser

from robustlit.losses import DROWeights, GAIRATWeights, InstanceWeighting, MAILWeights
from robustlit.losses.instance_weights import mail_weights, probabilistic_margin
from robustlit.losses.trades import trades_kl
from robustlit.methods import GAIRAT, MAIL, PGDAT, TRADES, DROAdversarialTraining
from robustlit.methods.adversarial import AdversarialTraining
from robustlit.models import SmallCNN

THREAT = {"eps": 0.2, "step_size": 0.05, "steps": 3}
EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_trades.py"


def make(cls: type, **kwargs: object) -> AdversarialTraining:
    torch.manual_seed(0)
    module = cls(backbone=SmallCNN(10, 1, width=8, hidden=16), **THREAT, **kwargs)
    with torch.no_grad():
        module.backbone.head[-1].weight.mul_(30)  # confident, input-dependent logits: KL and weights that matter
    return module


def batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Half the labels are the initial model's predictions, so margins and kappa differ across examples."""
    x, y = batch()
    with torch.no_grad():
        y[:6] = make(PGDAT).eval()(x[:6]).argmax(dim=1)
    return x, y


def loss_and_grads(module: AdversarialTraining, seed: int = 7) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x, y = mixed_batch()
    torch.manual_seed(seed)
    loss = module.training_loss(x, y)
    return loss, list(torch.autograd.grad(loss, list(module.classifier.parameters())))


@pytest.mark.parametrize(
    ("named", "composed"),
    [
        ((GAIRAT, {"lam": -1.0}), (PGDAT, {"weighting": GAIRATWeights(lam=-1.0)})),
        (
            (GAIRAT, {"base_loss": "trades", "beta": 5.0}),
            (TRADES, {"beta": 5.0, "weighting": GAIRATWeights(weighted_term="natural")}),
        ),
        ((MAIL, {"base_loss": "trades", "beta": 5.0}), (TRADES, {"beta": 5.0, "weighting": MAILWeights()})),
        ((MAIL, {}), (PGDAT, {"weighting": MAILWeights()})),
        ((DROAdversarialTraining, {"temperature": 0.5}), (PGDAT, {"weighting": DROWeights(temperature=0.5)})),
        (
            (DROAdversarialTraining, {"base_loss": "trades", "beta": 6.0, "temperature": 2.0}),
            (TRADES, {"beta": 6.0, "weighting": DROWeights(temperature=2.0)}),
        ),
    ],
)
def test_named_reweighted_methods_are_an_objective_plus_a_weighting(named: tuple, composed: tuple) -> None:
    (named_cls, named_kwargs), (objective_cls, objective_kwargs) = named, composed
    loss_named, grads_named = loss_and_grads(make(named_cls, **named_kwargs))
    composed_module = make(objective_cls, **objective_kwargs)
    loss_composed, grads_composed = loss_and_grads(composed_module)
    assert loss_named.item() == loss_composed.item()
    assert all(torch.equal(a, b) for a, b in zip(grads_named, grads_composed, strict=True))
    uniform = make(objective_cls, **{k: v for k, v in objective_kwargs.items() if k != "weighting"})
    assert composed_module.last_weights.std() > 1e-3  # the weights are not uniform on this batch ...
    assert loss_and_grads(uniform)[0].item() != loss_composed.item()  # ... and they change the loss


class FixedWeights(InstanceWeighting):
    """Known weights 1, 2, .., N, so the loss of each ``weighted_term`` can be written out by hand."""

    def forward(self, terms):  # noqa: ANN001, ANN201 - test double
        return torch.arange(1.0, len(terms.robust) + 1)


@pytest.mark.parametrize("term", ["robust", "natural", "whole"])
def test_weighted_term_selects_which_trades_term_the_weights_multiply(term: str) -> None:
    x, y = batch()
    module = make(TRADES, beta=6.0, weighting=FixedWeights(weighted_term=term))
    torch.manual_seed(1)
    loss = module.training_loss(x, y)
    torch.manual_seed(1)
    terms = module.loss_terms(x, y)
    w = torch.arange(1.0, len(y) + 1)
    natural = F.cross_entropy(terms.logits_clean, y, reduction="none")
    robust = 6.0 * trades_kl(terms.logits_clean, terms.logits_adv)
    expected = {
        "robust": natural + w * robust,
        "natural": w * natural + robust,
        "whole": w * (natural + robust),
    }[term].mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    others = {"robust", "natural", "whole"} - {term}
    for other in others:  # the three choices do differ on this batch
        torch.manual_seed(1)
        assert not torch.allclose(
            make(TRADES, beta=6.0, weighting=FixedWeights(weighted_term=other)).training_loss(x, y), loss
        )


def test_each_strategy_defaults_to_its_papers_term_and_all_three_are_selectable() -> None:
    assert GAIRATWeights().weighted_term == "robust"
    assert MAILWeights().weighted_term == "robust"
    assert DROWeights().weighted_term == "whole"
    assert make(GAIRAT).weighting.weighted_term == "robust"  # GAIRAT.py: the adversarial CE
    assert make(GAIRAT, base_loss="trades").weighting.weighted_term == "natural"  # GAIR-TRADES' nat_boost
    assert make(MAIL, base_loss="trades").weighting.weighted_term == "robust"  # trades_mail: the KL term
    assert make(DROAdversarialTraining, base_loss="trades").weighting.weighted_term == "whole"
    for cls, kwargs in ((GAIRAT, {}), (MAIL, {}), (DROAdversarialTraining, {})):
        assert make(cls, base_loss="trades", weighted_term="robust", **kwargs).weighting.weighted_term == "robust"
    for strategy in (GAIRATWeights, MAILWeights, DROWeights):
        assert strategy(weighted_term="natural").weighted_term == "natural"
        with pytest.raises(ValueError, match="weighted_term"):
            strategy(weighted_term="kl")
    assert not make(MAIL).weighting.normalise  # the authors' 3 · sigmoid(...), unnormalised


def test_a_user_subclass_of_trades_is_reweighted_by_the_same_strategy() -> None:
    class DoubleKL(TRADES):
        def loss_terms(self, x: torch.Tensor, y: torch.Tensor):  # noqa: ANN202 - a user's override
            terms = super().loss_terms(x, y)
            terms.robust = 2 * terms.robust
            return terms

    x, y = batch()
    module = make(DoubleKL, beta=1.0, weighting=MAILWeights())
    torch.manual_seed(1)
    loss = module.training_loss(x, y)
    torch.manual_seed(1)
    terms = module.loss_terms(x, y)  # the same attack (same seed), hence the same x'
    clean, adv = terms.logits_clean, terms.logits_adv
    weights = mail_weights(probabilistic_margin(adv, y))
    expected = (F.cross_entropy(clean, y, reduction="none") + weights * 2 * trades_kl(clean, adv)).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert not torch.allclose(weights, torch.ones_like(weights))


def load_example() -> type:
    spec = importlib.util.spec_from_file_location("custom_trades_under_test", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ConfidenceWeightedTRADES


def test_custom_trades_example_is_ce_plus_beta_misconfidence_times_kl() -> None:
    cls = load_example()
    module = make(cls, beta=6.0)
    x, y = batch()
    torch.manual_seed(11)
    loss = module.training_loss(x, y)
    torch.manual_seed(11)
    x_adv = module.adversarial_examples(x, y)
    logits_clean, logits_adv = module(x), module(x_adv)
    p_y = logits_clean.softmax(dim=1)[torch.arange(len(y)), y]
    expected = F.cross_entropy(logits_clean, y, reduction="none") + 6.0 * (1 - p_y) * trades_kl(
        logits_clean, logits_adv
    )
    assert torch.allclose(loss, expected.mean(), rtol=1e-6)
    plain = make(TRADES, beta=6.0)
    torch.manual_seed(11)
    assert not torch.allclose(plain.training_loss(x, y), loss)  # the weights matter on this batch
    hook = inspect.getsource(cls.robust_term_weights).strip().splitlines()
    assert len(hook) - 1 <= 5  # the loss code of the example: at most five lines below the signature


def test_weighting_is_configured_by_class_path() -> None:
    parser = ArgumentParser()
    parser.add_argument("--weighting", type=InstanceWeighting | None)
    config = parser.parse_args(
        [
            "--weighting",
            '{"class_path": "robustlit.losses.DROWeights", "init_args": {"temperature": 2.0, "momentum": 0.2}}',
        ]
    )
    weighting = parser.instantiate_classes(config).weighting
    assert isinstance(weighting, DROWeights) and weighting.temperature == 2.0 and weighting.momentum == 0.2
    assert math.isinf(DROWeights(temperature=None).temperature)


def test_weights_start_at_begin_epoch_and_dro_state_is_checkpointed() -> None:
    module = make(PGDAT, weighting=DROWeights(temperature=0.5, begin_epoch=1))
    x, y = batch()
    module.training_loss(x, y)  # epoch 0 outside a Trainer: uniform, normaliser untouched
    assert torch.allclose(module.last_weights, torch.full((12,), 1 / 12))
    assert not bool(module.weighting.normaliser.initialised)
    module.weighting.begin_epoch = 0
    module.training_loss(x, y)
    assert bool(module.weighting.normaliser.initialised)
    state = module.state_dict()
    assert "weighting.normaliser.log_u" in state
    restored = make(PGDAT, weighting=DROWeights(temperature=0.5))
    restored.load_state_dict(state)
    assert torch.equal(restored.weighting.normaliser.log_u, module.weighting.normaliser.log_u)


def test_dro_reads_checkpoints_that_kept_the_normaliser_at_the_top_level() -> None:
    module = make(DROAdversarialTraining, temperature=0.5)
    x, y = batch()
    module.training_loss(x, y)
    state = module.state_dict()
    old = {k.replace("weighting.normaliser.", "normaliser."): v for k, v in state.items()}
    restored = make(DROAdversarialTraining, temperature=0.5)
    restored.load_state_dict(old)
    assert torch.equal(restored.normaliser.log_u, module.normaliser.log_u)


def test_weighting_from_yaml_trains_through_the_cli_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    import robustlit
    from robustlit.cli import main

    monkeypatch.chdir(tmp_path)
    config = {
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "default_root_dir": str(tmp_path),
        },
        "model": {
            "class_path": "robustlit.methods.TRADES",
            "init_args": {
                **THREAT,
                "beta": 6.0,
                "weighting": {"class_path": "robustlit.losses.DROWeights", "init_args": {"temperature": 0.5}},
                "backbone": {"class_path": "robustlit.models.SmallCNN", "init_args": {"width": 8, "hidden": 16}},
            },
        },
        "data": {"class_path": "robustlit.data.DigitsDataModule", "init_args": {"batch_size": 16}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path)])
    module = robustlit.load_module(next(tmp_path.rglob("last.ckpt")))
    assert type(module) is TRADES and isinstance(module.weighting, DROWeights)
    assert module.weighting.temperature == 0.5 and bool(module.weighting.normaliser.initialised)
