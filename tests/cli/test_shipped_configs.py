"""Every shipped config runs through the CLI: fit (a few batches), then validate and test; every evaluation
fragment of configs/eval is parsed and instantiated after a dataset config. No config is skipped by its name:
the mixtures get base checkpoints trained here (a few batches) from the configs that make them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_vision_files import write_fake_cifar, write_fake_mnist
from harness import CONFIGS, load, shrink, write
from safetensors.torch import save_file
from torchvision.datasets import cifar

from robustlit.cli import main
from robustlit.cli_checks import class_of

DATASET_CONFIGS = sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "eval")
EVAL_FRAGMENTS = sorted((CONFIGS / "eval").glob("*.yaml"))
#: base checkpoints the mixture configs name (relative to the working folder) -> the config that trains them
BASES = {
    "checkpoints/digits_standard.ckpt": "digits/standard.yaml",
    "checkpoints/digits_trades.ckpt": "digits/trades.yaml",
    "checkpoints/tradeoff_standard.ckpt": "digits_tradeoff/standard.yaml",
    "checkpoints/tradeoff_pgd_at.ckpt": "digits_tradeoff/pgd_at.yaml",
}


def _fake_data(dataset: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    if dataset == "mnist":
        write_fake_mnist(root)
    elif dataset in ("cifar10", "cifar100"):
        write_fake_cifar(root, num_classes=10 if dataset == "cifar10" else 100)
        monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    else:
        return None
    return root


@pytest.fixture(scope="module")
def base_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The checkpoints of :data:`BASES`, each trained for 2 batches by the CLI from its own config."""
    out = {}
    for name, config_name in BASES.items():
        tmp = tmp_path_factory.mktemp(Path(name).stem)
        config = shrink(load(CONFIGS / config_name), tmp)
        config["test_after_fit"] = False
        main(["fit", "--config", str(write(config, tmp / "base.yaml"))])
        out[name] = next(tmp.rglob("last.ckpt"))
    return out


def _place_bases(config: dict, bases: dict[str, Path], work: Path) -> None:
    """Copy the base checkpoints a mixture config names (``*_checkpoint`` model arguments) into ``work``."""
    for key, value in (config.get("model", {}).get("init_args") or {}).items():
        if key.endswith("_checkpoint") and isinstance(value, str) and not key.startswith("save"):
            assert value in bases, f"{value} is named by a shipped config: add the config that trains it to BASES"
            (work / value).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(bases[value], work / value)


@pytest.mark.parametrize("config_path", DATASET_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_fits_validates_and_tests(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_checkpoints: dict[str, Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    data_root = _fake_data(config_path.parent.name, tmp_path / "data", monkeypatch)
    shrunk = shrink(load(config_path), tmp_path, data_root)
    _place_bases(shrunk, base_checkpoints, tmp_path)
    config = write(shrunk, tmp_path / "config.yaml")
    method = class_of(shrunk["model"]["class_path"])
    if getattr(method, "ready_without_checkpoint", False):
        # training-free (MixedNUTS): parsed and built here; its calibration and evaluation run, with settings for
        # bases trained for 2 batches, in tests/mixed/test_mixednuts_config.py
        cli = main(["--config", str(config)], run=False)
        assert type(cli.model) is method
        return
    main(["fit", "--config", str(config)])
    checkpoints = sorted(tmp_path.rglob("last.ckpt"))
    assert checkpoints, "fit wrote no last.ckpt"
    for subcommand in ("validate", "test"):
        main([subcommand, "--config", str(config), "--ckpt_path", str(checkpoints[0])])


@pytest.mark.parametrize("fragment", EVAL_FRAGMENTS, ids=lambda p: f"eval/{p.name}")
def test_every_evaluation_fragment_parses_and_instantiates(
    fragment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = write(shrink(load(CONFIGS / "digits" / "smoothing.yaml"), tmp_path), tmp_path / "base.yaml")
    extra: list[str] = []
    if fragment.name == "pretrained_digits.yaml":  # the weights file it names, from a freshly built SmallCNN
        from robustlit.models import SmallCNN

        (tmp_path / "exports").mkdir()
        save_file(SmallCNN(width=32).state_dict(), str(tmp_path / "exports" / "digits-standard-backbone.safetensors"))
        extra = ["--model.init_args.normalization", "data"]  # it must be stated: the fragment leaves it to the user
    if fragment.name == "ddp.yaml":  # GPUs named by the fragment; the rest of it is built on 2 CPU processes
        extra = ["--trainer.accelerator", "cpu", "--trainer.devices", "2"]
    cli = main(["--config", str(base), "--config", str(fragment), *extra], run=False)
    given = load(fragment).get("trainer", {}).get("callbacks") or []
    built = [type(c).__name__ for c in cli.trainer.callbacks]
    for callback in given:
        assert callback["class_path"].rsplit(".", 1)[-1] in built, (callback["class_path"], built)
