"""Config faults: a zero batch size is refused at parse time with one message; ``--trainer.default_root_dir``
places everything a run writes; a resumed fit reuses its run folder only when it is the logger's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fault_runs import record, run
from harness import CONFIGS, load, shrink, write
from jsonargparse import Namespace

from robustlit.cli import main
from robustlit.utils.run_paths import place_outputs_under_root, reuse_run_version

TRADES = CONFIGS / "digits" / "trades.yaml"


@pytest.mark.parametrize(
    "override, field, allowed",
    [
        (["--data.init_args.batch_size", "0"], "batch_size", "v>0"),
        (["--data.init_args.eval_batch_size", "0"], "eval_batch_size", "v>0"),
        (["--data.init_args.num_workers", "-1"], "num_workers", "v>=0"),
    ],
)
def test_bad_data_sizes_are_refused_at_parse_time_with_one_message(
    override: list[str], field: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config", str(TRADES), *override], run=False)
    error = capsys.readouterr().err
    assert info.value.code == 2
    assert f"error: data.init_args.{field}: " in error and allowed in error
    assert "Traceback" not in error and len(error.splitlines()) <= 2
    if field == "batch_size":
        record(
            fault="`--data.init_args.batch_size 0`",
            happened="refused while parsing, before anything is built or written: exit status 2",
            handled=f"one message naming the key and the rule: `{field}` ... `{allowed}` (PositiveInt hint)",
        )


def _relative_output_config(tmp: Path) -> Path:
    """The shipped digits TRADES config, shrunk, with its own relative output paths left as they are
    (logger ``save_dir: runs``) plus a relative attack cache, as the MNIST/CIFAR configs have."""
    shipped = load(TRADES)
    config = shrink(load(TRADES), tmp)
    config["trainer"]["logger"] = shipped["trainer"]["logger"]
    del config["trainer"]["default_root_dir"]
    config["trainer"]["callbacks"][0]["init_args"]["cache_dir"] = "runs/attack-cache"
    return write(config, tmp / "trades.yaml")


def test_default_root_dir_places_everything_a_run_writes(tmp_path: Path) -> None:
    config = _relative_output_config(tmp_path)
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    result = run(["fit", "--config", str(config), "--trainer.default_root_dir", str(out)], work)
    assert result.returncode == 0, result.stderr[-3000:]
    stray = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    stray = [p for p in stray if not p.startswith("out") and p not in ("trades.yaml", "work")]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    record(
        fault="shipped digits TRADES config (`save_dir: runs`, a relative `cache_dir`) run from folder W "
        "with `--trainer.default_root_dir D`",
        happened=f"{len(written)} files written, {len(stray)} outside D",
        handled="relative logger `save_dir` and callback `cache_dir`/`output_dir`/`dirpath` are resolved under D "
        "(`robustlit/utils/run_paths.py`); `config.yaml` records the resolved paths",
    )
    assert not stray, f"written outside default_root_dir: {stray}"
    assert not any(work.iterdir())
    assert any(p.startswith("runs/digits-trades/version_0/checkpoints/") for p in written), written
    assert any(p.startswith("runs/attack-cache/") for p in written), written
    assert "runs/digits-trades/version_0/config.yaml" in written
    assert str(out / "runs") in (out / "runs/digits-trades/version_0/config.yaml").read_text()


def _trainer(save_dir: str, name: str = "exp", version: int | None = None, root: str | None = None) -> Namespace:
    logger = Namespace(
        class_path="lightning.pytorch.loggers.TensorBoardLogger",
        init_args=Namespace(save_dir=save_dir, name=name, version=version),
    )
    callback = Namespace(class_path="robustlit.callbacks.AdversarialEvaluation", init_args=Namespace(cache_dir="c"))
    return Namespace(logger=logger, callbacks=[callback], default_root_dir=root)


def test_resume_reuses_the_version_only_of_the_loggers_own_folder(tmp_path: Path) -> None:
    ckpt = tmp_path / "runs" / "exp" / "version_3" / "checkpoints" / "last.ckpt"
    trainer = _trainer(str(tmp_path / "runs"))
    assert reuse_run_version(trainer, ckpt) == 3 and trainer.logger.init_args.version == 3
    other = _trainer(str(tmp_path / "elsewhere"))  # fine-tuning from another run's checkpoint: a new folder
    assert reuse_run_version(other, ckpt) is None and other.logger.init_args.version is None
    pinned = _trainer(str(tmp_path / "runs"), version=7)  # an explicit version wins
    assert reuse_run_version(pinned, ckpt) is None and pinned.logger.init_args.version == 7
    assert reuse_run_version(_trainer(str(tmp_path / "runs")), "last") is None
    assert reuse_run_version(_trainer(str(tmp_path / "runs")), tmp_path / "model.ckpt") is None


def test_relative_outputs_resolve_under_default_root_dir_and_absolute_ones_stay(tmp_path: Path) -> None:
    trainer = _trainer("runs", root=str(tmp_path))
    assert place_outputs_under_root(trainer) == ["TensorBoardLogger.save_dir", "AdversarialEvaluation.cache_dir"]
    assert trainer.logger.init_args.save_dir == str(tmp_path / "runs")
    assert trainer.callbacks[0].init_args.cache_dir == str(tmp_path / "c")
    absolute = _trainer(os.sep + "abs", root=str(tmp_path))
    absolute.callbacks[0].init_args.cache_dir = None
    assert place_outputs_under_root(absolute) == [] and absolute.logger.init_args.save_dir == os.sep + "abs"
    unset = _trainer("runs")
    assert place_outputs_under_root(unset) == [] and unset.logger.init_args.save_dir == "runs"
