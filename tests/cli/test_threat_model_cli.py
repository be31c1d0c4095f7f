"""Threat models as users write them, from a config or the command line (issue 20): ``8/255`` is accepted and
kept exact, an L2 radius above 1 is accepted where the data allows it, and a pretrained model's input
normalisation must be stated. Each test fails on the code of commit b23ce05."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import CONFIGS, REPO, load, write
from safetensors.torch import save_file

from robustlit.cli import main
from robustlit.models import SmallCNN

TRADES = CONFIGS / "digits" / "trades.yaml"
PRETRAINED = REPO / "configs" / "eval" / "pretrained_digits.yaml"


def test_eps_written_as_a_fraction_is_accepted_and_kept(tmp_path: Path) -> None:
    config = load(TRADES)
    config["trainer"]["callbacks"][1]["init_args"]["attacks"] = [{"name": "autoattack", "norm": "Linf", "eps": "8/255"}]
    path = write(config, tmp_path / "c.yaml")
    cli = main(["--config", str(path), "--model.init_args.eps", "8/255"], run=False)
    assert cli.model.threat_model.eps == 8 / 255 and str(cli.model.threat_model.eps) == "8/255"
    evaluation = cli.trainer.callbacks[1]
    assert [a.metric_name for a in evaluation.attacks] == ["autoattack_linf_8/255"]


def test_l2_radius_above_one_is_accepted() -> None:
    cli = main(["--config", str(TRADES), "--model.init_args.norm", "L2", "--model.init_args.eps", "2.0"], run=False)
    assert cli.model.threat_model.eps == 2.0  # within sqrt(64) = 8 of the 8x8 digits


def test_pretrained_model_normalisation_must_be_stated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: the shipped config normalised with the digits statistics without a word, so a model that
    # normalises itself was normalised twice
    weights = tmp_path / "backbone.safetensors"
    save_file(SmallCNN(num_classes=10, in_channels=1, width=32).state_dict(), str(weights))
    with pytest.raises(SystemExit) as refused:
        main(["--config", str(PRETRAINED), "--model.init_args.source.path", str(weights)], run=False)
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "error: model.init_args.normalization: required" in error and "inside" in error
    stated = ["--model.init_args.normalization", "inside"]
    cli = main(["--config", str(PRETRAINED), "--model.init_args.source.path", str(weights), *stated], run=False)
    assert cli.model.classifier[0].mean.flatten().tolist() == [0.0]  # inside: no second normalisation
