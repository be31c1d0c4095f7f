"""CLI behaviour: parse-time refusals, print_config, subclassing from user code, checkpoint loading."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torchattacks
from harness import CONFIGS, REPO, load, shrink, write

import robustlit
from robustlit.cli import main

TRADES_CONFIG = CONFIGS / "digits" / "trades.yaml"


def _run_expecting_exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args, run=False)
    assert info.value.code != 0
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "override, field, allowed",
    [
        (["--model.init_args.eps", "-0.1"], "model.init_args.eps", "radius >= 0"),
        (["--model.init_args.eps", "1.5"], "model.init_args.eps", "outside the Linf range [0, 1]"),
        (["--model.init_args.steps", "0"], "model.init_args.steps", "v>0"),
        (["--model.init_args.norm", "L3"], "model.init_args.norm", "'Linf', 'L2'"),
    ],
)
def test_out_of_range_model_values_are_refused_at_parse_time(
    override: list[str], field: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    error = _run_expecting_exit(["--config", str(TRADES_CONFIG), *override], capsys)
    assert f"error: {field}: " in error and allowed in error


@pytest.mark.parametrize(
    "attack, field, allowed",
    [
        ({"name": "pgdx"}, "name", "'fgsm', 'pgd', 'apgd'"),
        ({"name": "pgd", "eps": 1.5}, "eps", "outside the Linf range [0, 1]"),
        ({"name": "pgd", "eps": -0.01}, "eps", "radius >= 0"),
        ({"name": "pgd", "norm": "L1"}, "norm", "'Linf', 'L2'"),
    ],
)
def test_bad_attack_specs_are_refused_at_parse_time(
    attack: dict, field: str, allowed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(TRADES_CONFIG)
    config["trainer"]["callbacks"][0]["init_args"]["attacks"] = [attack]
    error = _run_expecting_exit(["--config", str(write(config, tmp_path / "c.yaml"))], capsys)
    assert re.search(rf"error: trainer\.callbacks.*\.attacks.*\.{field}: ", error) and allowed in error, error


def test_print_config_resolves_links_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(TRADES_CONFIG), "--print_config"])
    printed = capsys.readouterr().out
    assert "class_path: robustlit.methods.TRADES" in printed
    assert "inference_mode: false" in printed
    assert "test_after_fit: true" in printed


def test_user_subclass_from_examples_runs_and_loads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    config = write(shrink(load(TRADES_CONFIG), tmp_path), tmp_path / "config.yaml")
    main(["fit", "--config", str(config), "--model", "custom_trades.ConfidenceWeightedTRADES"])
    assert "adversarial evaluation" in capsys.readouterr().out  # the rich summary table was printed
    best = next(tmp_path.rglob("best.ckpt"))
    module = robustlit.load_module(best)
    assert type(module).__name__ == "ConfidenceWeightedTRADES" and module.beta == 6.0
    model = robustlit.load_classifier(best)
    assert not model.training
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    assert torch.allclose(model(x), module.eval()(x))
    x_adv = torchattacks.PGD(model, eps=0.1, alpha=0.05, steps=2)(x, y)  # usable by other libraries as is
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert "custom_trades" in sys.modules


def test_corrupt_or_missing_checkpoint_gives_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(robustlit.CheckpointError, match="no checkpoint file"):
        robustlit.load_classifier(tmp_path / "missing.ckpt")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(robustlit.CheckpointError, match="corrupt or truncated"):
        robustlit.load_classifier(broken)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.ckpt")
    with pytest.raises(robustlit.CheckpointError, match="not a Lightning checkpoint"):
        robustlit.load_classifier(tmp_path / "foreign.ckpt")
