"""A later config file replaces a list as a whole, and a metric name carries every non-default attack setting
(docs/faults.md, "No silently wrong number"; issue 23, case 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fault_runs import record
from harness import CONFIGS, write
from safetensors.torch import save_file

from robustlit.attacks import AttackSpec
from robustlit.callbacks import AdversarialEvaluation
from robustlit.cli import main
from robustlit.data import DigitsDataModule

FRAGMENT = {
    "trainer": {
        "callbacks": [
            {
                "class_path": "robustlit.callbacks.AdversarialEvaluation",
                "init_args": {
                    "num_examples": 32,
                    "stages": ["test"],
                    "print_table": False,
                    "attacks": [{"name": "native_pgd", "eps": 0.2, "steps": 5}],
                },
            }
        ]
    }
}


def _undefended_backbone(tmp_path: Path) -> Path:
    """An undefended SmallCNN (width 16, no input normalisation) as a safetensors state_dict."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attacks"))
    from undefended import undefended_small_cnn

    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in undefended_small_cnn().state_dict().items()}, str(path))
    return path


def test_a_fragment_replaces_the_attack_list_of_the_config_before_it(tmp_path: Path) -> None:
    """The issue's example: pretrained_digits.yaml (PGD-50, step_size 0.01) followed by a fragment listing
    ``{name: native_pgd, eps: 0.2, steps: 5}``. On the old parser the fragment's attack inherited
    ``step_size: 0.01`` and reported 87.50 % as ``native_pgd5_margin_linf_0.2`` (28.12 % with the default)."""
    weights = _undefended_backbone(tmp_path)
    fragment = write(FRAGMENT, tmp_path / "fragment.yaml")
    args = [
        "test",
        "--config",
        str(CONFIGS / "eval" / "pretrained_digits.yaml"),
        "--config",
        str(fragment),
        "--model.init_args.source.path",
        str(weights),
        "--model.init_args.source.init_args",
        "{num_classes: 10, in_channels: 1, width: 16}",
        "--model.init_args.normalization",
        "inside",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
    ]
    cli = main(args)
    (evaluation,) = [c for c in cli.trainer.callbacks if isinstance(c, AdversarialEvaluation)]
    assert evaluation.attacks == [AttackSpec(name="native_pgd", eps=0.2, steps=5)]
    assert evaluation.batch_size == 256  # the callback's default, not inherited either
    reported = cli.trainer.callback_metrics["test/robust_acc/native_pgd5_margin_linf_0.2"].item()

    # the same attack, built in Python from the fragment's spec, on the same model and examples
    data = DigitsDataModule()
    data.setup("test")
    model = cli.model.classifier.eval()
    direct = AdversarialEvaluation([AttackSpec(name="native_pgd", eps=0.2, steps=5)], num_examples=32)
    expected = direct.evaluate(model, data.test_dataset, 10, (0.0, 1.0), torch.device("cpu"))
    assert reported == pytest.approx(expected["attacks"]["native_pgd5_margin_linf_0.2"]["robust_acc"])
    inherited = AdversarialEvaluation(
        [AttackSpec(name="native_pgd", eps=0.2, steps=5, step_size=0.01)], num_examples=32
    ).evaluate(model, data.test_dataset, 10, (0.0, 1.0), torch.device("cpu"))
    # what the merge used to run: a different number, which now has a different name
    assert "native_pgd5_step0.01_margin_linf_0.2" in inherited["attacks"]
    leaked = inherited["attacks"]["native_pgd5_step0.01_margin_linf_0.2"]["robust_acc"]
    record(
        fault="`robustlit test --config configs/eval/pretrained_digits.yaml --config FRAGMENT` where the fragment "
        "lists `{name: native_pgd, eps: 0.2, steps: 5}` (the base config's attack has `step_size: 0.01`)",
        happened=f"`native_pgd5_margin_linf_0.2` = {100 * reported:.2f}%, the fragment's attack with its default step "
        f"size (before: the step size 0.01 leaked in by list position and gave {100 * leaked:.2f}% under the same "
        "name, which now reads `native_pgd5_step0.01_margin_linf_0.2`)",
        handled="`RobustArgumentParser` (robustlit/utils/config_files.py) parses a later config file's lists without "
        "the earlier ones to merge into; `AttackSpec.metric_name` shows a non-default step size and "
        "`random_start: false`",
    )
    assert leaked > reported + 0.2


def test_tsipras_then_the_audit_fragment_inherits_nothing(tmp_path: Path) -> None:
    """configs/tsipras/standard.yaml then configs/eval/audit.yaml: the audit's native PGD-50 used to inherit
    step_size 0.379, random_start false and the margin loss of the Tsipras config's first attack, and its APGD
    the margin loss (refused by APGD), and the callback its batch size and schedule."""
    configs = [CONFIGS / "tsipras" / "standard.yaml", CONFIGS / "eval" / "audit.yaml"]
    cli = main(["--config", str(configs[0]), "--config", str(configs[1])], run=False)
    (callback,) = cli.config.trainer.callbacks
    attacks = [AttackSpec(**vars(a)) for a in callback.init_args.attacks]
    assert attacks == [
        AttackSpec(name="native_pgd", eps=0.0313725, steps=50),
        AttackSpec(name="apgd", eps=0.0313725, steps=100),
    ]
    assert callback.init_args.batch_size == 256 and callback.init_args.every_n_epochs == 1


def test_dicts_still_override_key_by_key(tmp_path: Path) -> None:
    fragment = write({"model": {"init_args": {"beta": 1.0}}}, tmp_path / "beta.yaml")
    cli = main(["--config", str(CONFIGS / "digits" / "trades.yaml"), "--config", str(fragment)], run=False)
    assert cli.model.beta == 1.0
    assert cli.config.model.init_args.backbone.init_args.width == 32  # the rest of the model is kept
    assert len(cli.config.trainer.callbacks) == 2  # no list in the fragment: the config's callbacks stay


@pytest.mark.parametrize(
    "spec, name",
    [
        (AttackSpec(name="pgd", eps=0.2, steps=50, step_size=0.01), "pgd50_linf_0.2"),  # 2.5 eps / steps
        (AttackSpec(name="pgd", eps=0.031372549, steps=20, step_size=0.003), "pgd20_step0.003_linf_0.03137"),
        (AttackSpec(name="native_pgd", eps=0.2, steps=5, step_size=0.01), "native_pgd5_step0.01_margin_linf_0.2"),
        (
            AttackSpec(name="native_pgd", eps=0.379473, steps=1, step_size=0.379473, random_start=False, loss="margin"),
            "native_pgd1_step0.3795_norandstart_margin_linf_0.3795",
        ),
        (AttackSpec(name="native_pgd", eps=0.2, steps=5, loss="ce"), "native_pgd5_linf_0.2"),
    ],
)
def test_every_setting_that_differs_from_the_default_is_in_the_name(spec: AttackSpec, name: str) -> None:
    assert spec.metric_name == name


@pytest.mark.parametrize("attack", ["apgd", "apgd_t", "fab", "square", "fgsm", "autoattack"])
def test_attacks_that_choose_their_own_steps_refuse_step_size_and_random_start(attack: str) -> None:
    with pytest.raises(ValueError, match="chooses its own step size"):
        AttackSpec(name=attack, step_size=0.01)
    with pytest.raises(ValueError, match="chooses its own step size"):
        AttackSpec(name=attack, random_start=False)


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_a_list_given_on_the_command_line_replaces_the_config_list(form: str) -> None:
    """``--trainer.callbacks '[...]'`` after a config: jsonargparse merged it element by element into the config's
    list of the same length, so its attack inherited ``step_size: 0.379``, ``random_start: false`` and the margin
    loss of the config's first attack, and the callback the config's ``num_examples`` and ``batch_size``."""
    attack = "{name: native_pgd, eps: 0.2, steps: 5}"
    given = f"[{{class_path: robustlit.callbacks.AdversarialEvaluation, init_args: {{attacks: [{attack}]}}}}]"
    option = ["--trainer.callbacks", given] if form == "separate" else [f"--trainer.callbacks={given}"]
    cli = main(["--config", str(CONFIGS / "tsipras" / "standard.yaml"), *option], run=False)
    (callback,) = cli.config.trainer.callbacks
    assert [AttackSpec(**vars(a)) for a in callback.init_args.attacks] == [
        AttackSpec(name="native_pgd", eps=0.2, steps=5)
    ]
    assert callback.init_args.num_examples == 1000 and callback.init_args.batch_size == 256  # not 10000, 2000


def test_a_command_line_list_can_still_be_appended_to() -> None:
    more = "{class_path: robustlit.callbacks.AdversarialEvaluation, init_args: {attacks: [{name: fgsm, eps: 0.1}]}}"
    cli = main(["--config", str(CONFIGS / "digits" / "trades.yaml"), f"--trainer.callbacks+={more}"], run=False)
    assert len(cli.config.trainer.callbacks) == 3
    assert cli.config.trainer.callbacks[0].init_args.attacks[0].step_size == 0.01  # the config's own attack, kept
