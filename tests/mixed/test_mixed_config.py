"""configs/digits/mixed.yaml through the real CLI, shrunk by the shipped-config harness, on a base
checkpoint freshly trained (a few batches) by the CLI from configs/digits/standard.yaml."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

import robustlit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from harness import CONFIGS, load, shrink, write  # noqa: E402

from robustlit.cli import main  # noqa: E402
from robustlit.mixed.module import MixedClassifierModule  # noqa: E402


def _fit(name: str, tmp_path: Path) -> Path:
    config = shrink(load(CONFIGS / "digits" / name), tmp_path)
    config["test_after_fit"] = False  # only the checkpoint is needed here
    config = write(config, tmp_path / name)
    cli = main(["fit", "--config", str(config)])
    return Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"  # the second ModelCheckpoint's file


def test_mixed_config_fits_and_tests_without_the_base_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # mixed.yaml names checkpoints/digits_{standard,trades}.ckpt, relative paths
    missing = write(shrink(load(CONFIGS / "digits" / "mixed.yaml"), tmp_path), tmp_path / "missing.yaml")
    # refused as bad input: one line naming the field and what to do, exit 2 (docs/faults.md)
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--config", str(missing)])
    assert refused.value.code == 2
    assert re.search(r"error: model: .*digits_standard\.ckpt.*mixed_digits\.py --bases-only", capsys.readouterr().err)
    (tmp_path / "checkpoints").mkdir()
    base = _fit("standard.yaml", tmp_path)  # one CLI-trained base in both roles keeps the test fast
    shutil.copy(base, tmp_path / "checkpoints" / "digits_standard.ckpt")
    shutil.copy(base, tmp_path / "checkpoints" / "digits_trades.ckpt")

    config = shrink(load(CONFIGS / "digits" / "mixed.yaml"), tmp_path)
    evaluation = config["trainer"]["callbacks"][-1]["init_args"]
    evaluation.update(sweep_alphas=[0.0, 1.0], bce_weights=[0.5])
    config = write(config, tmp_path / "mixed.yaml")
    fitted = main(["fit", "--config", str(config)])
    assert isinstance(fitted.model, MixedClassifierModule)
    assert "val/mixture_eval/mixture/robust_acc/adaptive_apgd_t3_linf_0.2" in fitted.trainer.callback_metrics
    last = Path(fitted.trainer.checkpoint_callback.last_model_path)
    assert last.is_file()

    shutil.rmtree(tmp_path / "checkpoints")  # the mixture checkpoint carries the base configurations
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        expected = fitted.model.eval()(x)
        reloaded = MixedClassifierModule.load_from_checkpoint(last, weights_only=False).eval()
        torch.testing.assert_close(reloaded(x), expected)
        classifier = robustlit.load_classifier(last)  # the generic loader, class path from the checkpoint
        torch.testing.assert_close(classifier(x), expected)
    tested = main(["test", "--config", str(config), "--ckpt_path", str(last)])
    assert "test/mixture_eval/mixture/clean_acc" in tested.trainer.callback_metrics
    with torch.no_grad():
        torch.testing.assert_close(tested.model.eval()(x), expected)
