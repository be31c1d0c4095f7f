"""User code registers an attack with @register_attack and a YAML config runs it through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from robustlit.attacks import AttackSpec, registered_attacks
from robustlit.attacks.registry import ATTACKS

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from harness import CONFIGS, load, shrink, write  # noqa: E402

USER_CODE = Path(__file__).parent / "user_code"


@pytest.fixture
def user_module(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.syspath_prepend(str(USER_CODE))
    monkeypatch.delitem(sys.modules, "my_attacks", raising=False)
    yield "my_attacks"
    ATTACKS.pop("one_step_margin", None)
    sys.modules.pop("my_attacks", None)


def test_dotted_name_imports_the_user_module_and_finds_its_attack(user_module: str) -> None:
    assert "one_step_margin" not in registered_attacks()
    spec = AttackSpec(name=f"{user_module}.one_step_margin", eps=0.2)
    assert "one_step_margin" in registered_attacks()
    assert spec.metric_name == "one_step_margin_linf_0.2"
    with pytest.raises(ValueError, match="already registered"):
        from robustlit.attacks import register_attack

        register_attack("one_step_margin")(lambda *args: None)


def test_user_attack_runs_from_yaml_through_the_cli(
    user_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustlit.cli import main

    monkeypatch.chdir(tmp_path)
    config = shrink(load(CONFIGS / "digits" / "standard.yaml"), tmp_path)
    config["trainer"]["callbacks"] = [
        {
            "class_path": "robustlit.callbacks.AdversarialEvaluation",
            "init_args": {
                "num_examples": 8,
                "stages": ["test"],
                "attacks": [{"name": f"{user_module}.one_step_margin", "norm": "Linf", "eps": 0.2}],
            },
        }
    ]
    config["test_after_fit"] = False
    path = write(config, tmp_path / "config.yaml")
    main(["fit", "--config", str(path)])
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    main(["test", "--config", str(path), "--ckpt_path", str(checkpoint)])
    results = [json.loads(p.read_text()) for p in tmp_path.rglob("adversarial_evaluation_test.json")]
    assert results, "no adversarial evaluation JSON was written"
    attacks = results[-1]["attacks"]
    assert "one_step_margin_linf_0.2" in attacks
    assert 0.0 <= attacks["one_step_margin_linf_0.2"]["robust_acc"] <= results[-1]["clean_acc"]


def test_unknown_user_attack_is_refused_at_parse_time_with_the_registered_names(
    user_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from robustlit.cli import main

    config = load(CONFIGS / "digits" / "standard.yaml")
    config["trainer"]["callbacks"][0]["init_args"]["attacks"] = [{"name": f"{user_module}.no_such_attack"}]
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(write(config, tmp_path / "c.yaml"))], run=False)
    error = capsys.readouterr().err
    assert "no_such_attack" in error and "'native_pgd'" in error and "'one_step_margin'" in error
