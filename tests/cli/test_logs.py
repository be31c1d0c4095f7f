"""What a run prints and logs (issue 20): piped to a file, one plain line per epoch with the time left and the run
folder first, no Lightning metric table after robustlit's; TensorBoard's ``hp_metric`` is the headline robust
accuracy; training logs clean and adversarial accuracy, each loss term and the learning rate; ``--model.help``
lists a few backbones, not every ``nn.Module`` in torch; exported weights are readable as the umask allows."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from harness import CONFIGS, REPO, load, shrink, write
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CONSOLE_SCRIPT = Path(sys.executable).parent / "robustlit"
EPOCHS = 3


@pytest.fixture(scope="module")
def piped_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``robustlit fit`` of the demo config (3 epochs, a few batches, small attacks), stdout a pipe, as in a job log."""
    tmp = tmp_path_factory.mktemp("piped")
    config = shrink(load(CONFIGS / "digits" / "trades.yaml"), tmp)
    config["trainer"].update(max_epochs=EPOCHS, log_every_n_steps=1)
    del config["trainer"]["enable_progress_bar"], config["trainer"]["enable_model_summary"]  # the CLI's defaults
    config["trainer"]["callbacks"][0]["init_args"]["every_n_epochs"] = 2
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "fit", "--config", str(write(config, tmp / "c.yaml"))],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done, next(tmp.glob("runs/cli/version_0"))


def test_piped_output_has_a_line_per_epoch_with_the_time_left(piped_fit: tuple) -> None:
    done, run = piped_fit
    lines = done.stdout.splitlines()
    assert lines[0] == f"run folder: {run}" or f"run folder: {run}" in lines[:3]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == EPOCHS
    for k, line in enumerate(epochs, start=1):
        assert re.match(rf"epoch {k}/{EPOCHS}: train/loss [\d.]+, .*train/acc/clean [\d.]+%.*left\)$", line), line
    assert "val/robust_acc" in epochs[1] and "val/robust_acc" not in epochs[0]  # every_n_epochs: 2, and the last
    assert "Test metric" not in done.stdout  # Lightning's table repeated robustlit's, with names cut short
    assert "test: adversarial evaluation" in done.stdout
    assert "┏━━━┳━━━━" not in done.stdout.split("epoch 1/")[0]  # a one-line model summary, not the table
    assert "model: TRADES (SmallCNN)" in done.stdout


def test_training_logs_accuracies_loss_terms_learning_rate_and_hp_metric(piped_fit: tuple) -> None:
    _, run = piped_fit
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"train/acc/clean", "train/acc/adversarial", "train/loss/natural", "train/loss/robust", "lr-Adam"}
    assert expected <= tags, sorted(tags)
    hp_metric = events.Scalars("hp_metric")[-1].value
    ensemble = events.Scalars("test/robust_acc/ensemble")[-1].value
    assert hp_metric == pytest.approx(ensemble) and hp_metric != -1  # before: -1, the placeholder


def test_model_help_lists_a_few_backbones() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["fit", "--model", "robustlit.methods.TRADES", "--model.help", "robustlit.methods.TRADES"]
    done = subprocess.run([str(CONSOLE_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) < 200  # before: 825 lines, 700 of them torch's nn.Module classes
    text = " ".join(done.stdout.split())  # argparse wraps the help at the terminal's width
    assert "robustlit.models.SmallCNN" in text and "more; any importable class path" in text


def test_exported_weights_follow_the_umask(tmp_path: Path) -> None:
    from torch import nn

    from robustlit.interop.exported import WEIGHTS_FILE, write_export
    from robustlit.models import Normalize, SmallCNN

    classifier = nn.Sequential(Normalize([0.3], [0.38]), SmallCNN(num_classes=10, in_channels=1, width=4))
    card = {
        "architecture": {"class_path": "robustlit.models.SmallCNN", "init_args": {"width": 4}},
        "normalization": {"mean": [0.3], "std": [0.38]},
        "bounds": [0, 1],
        "num_classes": 10,
    }
    previous = os.umask(0o022)
    try:
        write_export(classifier, card, tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / WEIGHTS_FILE).stat().st_mode) == 0o644  # before: 0o600
