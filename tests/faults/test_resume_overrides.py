"""``--ckpt_path`` with other settings than the checkpoint's: applied and recorded, or refused by name
(docs/faults.md, "Changing settings on resume"; issue 23, case 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fault_runs import record
from harness import CONFIGS, load, shrink, write

from robustlit.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, last.ckpt) of a shrunk digits TRADES run of one epoch (beta 6, width 32)."""
    tmp = tmp_path_factory.mktemp("resume-overrides")
    config = shrink(load(CONFIGS / "digits" / "trades.yaml"), tmp)
    config["test_after_fit"] = False
    config = write(config, tmp / "trades.yaml")
    main(["fit", "--config", str(config)])
    return config, next(tmp.rglob("last.ckpt"))


def test_an_override_given_with_ckpt_path_is_applied_and_recorded(trained: tuple[Path, Path]) -> None:
    config, last = trained
    cli = main(
        ["fit", "--config", str(config), "--ckpt_path", str(last), "--trainer.max_epochs", "2"]
        + ["--model.init_args.beta", "1.0"]
    )
    saved = yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())
    record(
        fault="`fit --ckpt_path last.ckpt --model.init_args.beta 1.0` (the checkpoint has beta 6)",
        happened=f"trained with beta {cli.model.beta}; config.yaml records beta {saved['model']['init_args']['beta']} "
        "(before: trained with beta 6 and config.yaml said 6: the override was dropped without a word)",
        handled="`RobustLitCLI._parse_ckpt_path` keeps a given setting that differs from the checkpoint's "
        "hyperparameters (`robustlit/utils/resume_settings.py`) and prints it",
    )
    assert cli.model.beta == 1.0
    assert saved["model"]["init_args"]["beta"] == 1.0
    assert cli.trainer.current_epoch == 2  # it did resume: one more epoch


def test_a_setting_that_changes_the_parameters_is_refused_naming_it(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, last = trained
    monkeypatch.chdir(tmp_path)
    before = sorted(config.parent.rglob("*"))
    with pytest.raises(SystemExit) as info:
        width = ["--model.init_args.backbone.init_args.width", "16"]
        main(["fit", "--config", str(config), "--ckpt_path", str(last), *width])
    error = capsys.readouterr().err
    record(
        fault="`fit --ckpt_path last.ckpt --model.init_args.backbone.init_args.width 16` (the checkpoint has width 32)",
        happened=f"refused: exit status {info.value.code}, nothing written (before: ignored, exit 0)",
        handled="the settings are named: `" + error.split("error: ", 1)[-1].strip()[:150] + "...`",
    )
    assert info.value.code == 2
    assert "backbone.init_args.width: 32 in the checkpoint, 16 given" in error and "cannot change" in error
    assert sorted(config.parent.rglob("*")) == before


def test_another_method_with_the_checkpoint_is_refused(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, last = trained
    other = write(shrink(load(CONFIGS / "digits" / "mart.yaml"), tmp_path), tmp_path / "mart.yaml")
    with pytest.raises(SystemExit) as info:
        main(["test", "--config", str(other), "--ckpt_path", str(last)])
    error = capsys.readouterr().err
    assert info.value.code == 2 and "robustlit.methods.TRADES" in error and "robustlit.methods.MART" in error


def test_the_same_settings_resume_quietly(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, last = trained
    cli = main(["validate", "--config", str(config), "--ckpt_path", str(last)])
    assert cli.model.beta == 6.0
    assert "applying settings" not in capsys.readouterr().err
