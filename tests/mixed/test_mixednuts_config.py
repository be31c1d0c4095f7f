"""configs/digits_tradeoff/mixednuts.yaml through the real CLI (shrunk): calibration on the validation split,
the transform saved in the checkpoint, evaluation with adaptive attacks through the surrogate."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from harness import CONFIGS, load, shrink, write  # noqa: E402

from robustlit.cli import main  # noqa: E402
from robustlit.mixed.mixednuts_module import MixedNUTSModule  # noqa: E402


def test_mixednuts_config_calibrates_saves_and_evaluates_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config names checkpoints/tradeoff_*.ckpt, relative paths
    base = shrink(load(CONFIGS / "digits_tradeoff" / "standard.yaml"), tmp_path)
    base["test_after_fit"] = False
    cli = main(["fit", "--config", str(write(base, tmp_path / "standard.yaml"))])
    trained = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(trained, tmp_path / "checkpoints" / "tradeoff_standard.ckpt")
    shutil.copy(trained, tmp_path / "checkpoints" / "tradeoff_pgd_at.ckpt")  # one base in both roles: fast

    config = shrink(load(CONFIGS / "digits_tradeoff" / "mixednuts.yaml"), tmp_path)
    config["model"]["init_args"].update(
        # a base trained for 2 batches is nearly random: a tiny radius leaves set (a) non-empty
        calibration_attack={"name": "apgd", "norm": "Linf", "eps": 0.001, "steps": 2},
        calibration_targets=2,
        calibration_autoattack=False,
        calibration_examples=128,
        s_grid=[1.0, 2.0],
        c_grid=[0.0],
        p_grid=[1.0],
    )
    config["trainer"]["callbacks"][0]["init_args"].update(sweep_alphas=[0.0, 1.0], adaptive_targets=2)
    config = write(config, tmp_path / "mixednuts.yaml")
    tested = main(["test", "--config", str(config)])
    module = tested.model
    assert isinstance(module, MixedNUTSModule) and bool(module.mixture.calibrated)
    assert module.search_result is not None and module.search_result["set_a"] > 0
    metrics = tested.trainer.callback_metrics
    assert "test/mixture_eval/mixture/robust_acc/adaptive_apgd_t3_linf_0.1" in metrics
    assert "test/mixture_eval/mixture/robust_acc/worst" in metrics
    saved = tmp_path / "checkpoints" / "tradeoff_mixednuts.ckpt"
    assert saved.is_file()
    reloaded = MixedNUTSModule.load_from_checkpoint(saved, weights_only=False).eval()
    assert bool(reloaded.mixture.calibrated)
    assert reloaded.mixture.alpha == module.mixture.alpha
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), module.eval()(x))
