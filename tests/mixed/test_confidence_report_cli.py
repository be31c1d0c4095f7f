"""configs/eval/confidence_report.yaml through the real CLI (shrunk): `robustlit test --config <model config> --config
configs/eval/confidence_report.yaml --ckpt_path ...` prints the table and writes the JSON and the figure."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from harness import CONFIGS, load, shrink, write  # noqa: E402

from robustlit.cli import main  # noqa: E402


def test_confidence_report_fragment_runs_on_a_checkpoint_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the fragment names checkpoints/tradeoff_standard.ckpt, a relative path
    config = shrink(load(CONFIGS / "digits_tradeoff" / "standard.yaml"), tmp_path)
    config["test_after_fit"] = False
    cli = main(["fit", "--config", str(write(config, tmp_path / "standard.yaml"))])
    trained = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(trained, tmp_path / "checkpoints" / "tradeoff_standard.ckpt")

    fragment = yaml.safe_load((CONFIGS / "eval" / "confidence_report.yaml").read_text())
    fragment["trainer"]["callbacks"][0]["init_args"].update(steps=3, targets=2, num_examples=16, batch_size=8)
    tested = main(
        ["test", "--config", str(write(config, tmp_path / "model.yaml")),
         "--config", str(write(fragment, tmp_path / "fragment.yaml")), "--ckpt_path", str(trained)]
    )  # fmt: skip
    metrics = tested.trainer.callback_metrics
    assert "test/confidence/robust_acc/apgd_ce_t2_3_linf_0.1" in metrics
    assert "test/confidence/recommended_alpha" in metrics
    folder = Path(tested.trainer.log_dir)
    report = json.loads((folder / "confidence_report_test.json").read_text())
    assert report["num_examples"] == 16
    assert report["clean_gap"] == 0.0  # g is h here (one checkpoint, fast): no gap to recover
    assert report["attack"] == {"eps": 0.1, "norm": "Linf", "steps": 3, "targets": 2, "restarts": 1,
                                "name": "apgd_ce_t2_3_linf_0.1"}  # fmt: skip
    assert 0.0 <= report["robust_acc"] <= report["clean_acc"]
    assert (folder / "confidence_figure_test.png").is_file()
    assert "confidence report of the robust model" in capsys.readouterr().out
