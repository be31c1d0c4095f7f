"""MixedClassifierModule: training recipe, frozen bases, alpha endpoints, checkpoints (docs/mixed_classifier.md)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from mixed_toys import K, tiny_base, tiny_dataset, tiny_loader, tiny_module, tiny_trainer

import robustlit
from robustlit.mixed.bases import MIXED_DIGITS_COMMAND
from robustlit.mixed.module import MixedClassifierModule


class FrozenBasesCheck(pl.Callback):
    """Asserts at every training batch that both base models are in eval mode and frozen."""

    def __init__(self) -> None:
        self.checked = 0

    def _check(self, pl_module: MixedClassifierModule) -> None:
        mixture = pl_module.mixture
        assert mixture.mixing_network.training
        for base in (mixture.standard, mixture.robust):
            assert all(not m.training for m in base.modules())
            assert all(not p.requires_grad for p in base.parameters())
        self.checked += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._check(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._check(pl_module)


def test_fit_changes_only_the_mixing_network_and_keeps_bases_frozen():
    module = tiny_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    check = FrozenBasesCheck()
    tiny_trainer(callbacks=[check]).fit(module, tiny_loader(), tiny_loader(16))
    assert check.checked == 4  # 2 batches, start and end
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    base_keys = {k for k in before if ".standard." in k or ".robust." in k}
    assert base_keys and not changed & base_keys  # weights and BN running statistics of g and h untouched
    net_params = {f"classifier.1.mixing_network.{n}" for n, _ in module.mixture.mixing_network.named_parameters()}
    assert net_params & changed  # the mixing network did learn
    assert all(not m.training for m in module.mixture.standard.modules())


def test_optimizer_sees_only_mixing_network_parameters():
    module = tiny_module()
    optimizer = module.configure_optimizers()
    seen = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert seen == {id(p) for p in module.mixture.mixing_network.parameters()}


def test_training_loss_uses_adversarial_examples_inside_the_ball():
    module = tiny_module()
    x, y = tiny_dataset(8)[:]
    x_adv = module.adversarial_examples(x, y)
    assert x_adv.shape == (module.attacked_copies * 8, *x.shape[1:])
    x = x.repeat(module.attacked_copies, 1, 1, 1)
    assert (x_adv - x).abs().max() <= 0.2 * 1.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any()
    assert module.mixture.compress_alpha is None  # restored after the attack
    module.train()
    loss = module.training_loss(*tiny_dataset(8)[:])
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_constant_alpha_endpoints_predict_as_the_base_models():
    x, _ = tiny_dataset(16)[:]
    for alpha, base in ((0.0, tiny_base(0, 4)), (1.0, tiny_base(1, 6))):
        module = tiny_module(alpha=alpha).eval()
        out = module(x)
        torch.testing.assert_close(out.softmax(dim=1).sum(dim=1), torch.ones(16))
        assert torch.equal(out.argmax(dim=1), base(x).argmax(dim=1))
        torch.testing.assert_close(out, base(x).log_softmax(dim=1))
    mixed = tiny_module(alpha=0.5).eval()(x)
    torch.testing.assert_close(mixed.softmax(dim=1).sum(dim=1), torch.ones(16))


def test_constant_alpha_has_nothing_to_fit():
    with pytest.raises(ValueError, match="nothing to train"):
        tiny_module(alpha=0.3).configure_optimizers()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha_range": (0.9, 0.2)}, "alpha_range"),
        ({"bce_weight": (0.0, 1.5)}, "bce_weight"),
        ({"attack_steps": (3, 2)}, "attack_steps"),
        ({"eps_scale": (0.0, 1.0)}, "eps_scale"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        tiny_module(**kwargs)


def test_mixing_network_needs_layers_and_lists_the_names():
    with pytest.raises(ValueError, match="'conv1'.*'act2'"):
        tiny_module(standard_layers=None, robust_layers=None)
    with pytest.raises(ValueError, match="backbone"):
        tiny_module(backbone=torch.nn.Identity())
    with pytest.raises(ValueError, match="4 logits but num_classes is 10"):
        tiny_module(num_classes=10)


def test_missing_checkpoint_names_the_path_and_the_command(tmp_path):
    missing = tmp_path / "digits_standard.ckpt"
    with pytest.raises(FileNotFoundError) as info:
        MixedClassifierModule(standard_checkpoint=str(missing), robust=tiny_base(1, 6), alpha=0.5, num_classes=K)
    assert str(missing) in str(info.value) and MIXED_DIGITS_COMMAND in str(info.value)


def test_checkpoint_round_trip_with_injected_modules(tmp_path):
    """Base models given as modules are pickled in the hyperparameters (as any nn.Module argument);
    the CLI route with base checkpoint files is tested in test_mixed_config.py."""
    module = tiny_module()
    trainer = tiny_trainer(limit_val_batches=0)
    trainer.fit(module, tiny_loader())
    path = tmp_path / "mixed.ckpt"
    trainer.save_checkpoint(path)
    loaded = robustlit.load_module(path)  # the class is read from the checkpoint
    assert isinstance(loaded, MixedClassifierModule)
    assert loaded.mixture.mixing_network is not None
    x, _ = tiny_dataset(8)[:]
    module.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x))
        torch.testing.assert_close(loaded.mixture.forward_with_alpha(x)[1], module.mixture.forward_with_alpha(x)[1])
    net_key = "classifier.1.mixing_network.linear.weight"
    assert torch.equal(loaded.state_dict()[net_key], module.state_dict()[net_key])


def test_checkpoints_naming_the_old_import_path_still_load(tmp_path) -> None:
    """Checkpoints written when the module lived in ``robustlit.methods.mixed`` name that path."""
    from robustlit.checkpoint import _import_method

    assert _import_method("robustlit.methods.mixed.MixedClassifierModule", tmp_path / "x.ckpt") is MixedClassifierModule
