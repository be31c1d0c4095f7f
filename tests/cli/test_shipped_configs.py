"""Every shipped config runs through the CLI: fit (a few batches), then validate and test."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_vision_files import write_fake_cifar, write_fake_mnist
from harness import CONFIGS, load, shrink, write
from torchvision.datasets import cifar

from robustlit.cli import main

DATASET_CONFIGS = sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "eval")
# configs that need inputs produced by another run are exercised by their own tests
NEEDS_ARTEFACTS = {"mixed.yaml", "mixednuts.yaml"}


def _fake_data(dataset: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    if dataset == "mnist":
        write_fake_mnist(root)
    elif dataset in ("cifar10", "cifar100"):
        write_fake_cifar(root, num_classes=10 if dataset == "cifar10" else 100)
        monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    else:
        return None
    return root


@pytest.mark.parametrize("config_path", DATASET_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_fits_validates_and_tests(config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if config_path.name in NEEDS_ARTEFACTS:
        pytest.skip("needs base checkpoints; covered by its own test")
    monkeypatch.chdir(tmp_path)
    data_root = _fake_data(config_path.parent.name, tmp_path / "data", monkeypatch)
    config = write(shrink(load(config_path), tmp_path, data_root), tmp_path / "config.yaml")
    main(["fit", "--config", str(config)])
    checkpoints = sorted(tmp_path.rglob("last.ckpt"))
    assert checkpoints, "fit wrote no last.ckpt"
    for subcommand in ("validate", "test"):
        main([subcommand, "--config", str(config), "--ckpt_path", str(checkpoints[0])])
