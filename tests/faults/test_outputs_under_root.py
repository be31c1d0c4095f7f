"""Everything a run writes lies under its ``default_root_dir``, the certification TSV of a checkpoint from
another folder included (issue 23, case 8; docs/faults.md, "One output flag")."""

from __future__ import annotations

from pathlib import Path

from fault_runs import record
from harness import CONFIGS, load, shrink, write

from robustlit.cli import main


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_certifying_a_checkpoint_from_elsewhere_writes_only_under_default_root_dir(tmp_path: Path) -> None:
    trained, evaluated = tmp_path / "trained", tmp_path / "evaluated"
    config = shrink(load(CONFIGS / "digits" / "smoothing.yaml"), trained)
    config["trainer"]["callbacks"] = [
        {"class_path": "robustlit.callbacks.Certification", "init_args": {"n0": 8, "n": 32, "num_examples": 4}}
    ]
    del config["trainer"]["logger"]  # the shipped default: TensorBoard under <default_root_dir>/runs
    fit_config = write(config, tmp_path / "fit.yaml")
    main(["fit", "--config", str(fit_config)])
    ckpt = next(trained.rglob("last.ckpt"))
    before = _files(trained)

    args = ["test", "--config", str(fit_config), "--ckpt_path", str(ckpt)]
    main([*args, "--trainer.default_root_dir", str(evaluated)])
    outside = sorted(str(p.relative_to(tmp_path)) for p in _files(trained) - before)
    tsvs = sorted(str(p.relative_to(tmp_path)) for p in evaluated.rglob("*.tsv"))
    record(
        fault="`robustlit test --config configs/digits/smoothing.yaml --config <certification> --ckpt_path "
        "A/.../last.ckpt --trainer.default_root_dir B`",
        happened=f"{len(tsvs)} certification TSV under B, {len(outside)} files written under A (before: the TSV went "
        "to the checkpoint's grandparent folder, outside default_root_dir; one run wrote into the system temp folder)",
        handled="`Certification` keeps the checkpoint's run folder only when it lies under `default_root_dir`, "
        "otherwise `<default_root_dir>/certification`",
    )
    assert not outside, f"written outside default_root_dir: {outside}"
    assert tsvs and all(t.startswith("evaluated/certification/") for t in tsvs), tsvs
