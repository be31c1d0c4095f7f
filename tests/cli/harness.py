"""Run shipped configs through the real CLI, shrunk to a few batches (torchgeo-style config tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
CAPS = {
    "num_examples": 8,
    "n": 200,
    "n0": 16,
    "steps": 3,
    "num_batches": 2,
    "audit_examples": 8,
    "audit_square_queries": 20,
}
#: per-attack caps (``attacks`` and ``curve_attacks`` entries); Square's budget is ``queries``
ATTACK_CAPS = {"steps": 3, "queries": 20}


def _cap(init_args: dict[str, Any]) -> None:
    for key, cap in CAPS.items():
        if isinstance(init_args.get(key), int) and init_args[key] > cap:
            init_args[key] = cap
    if init_args.get("num_examples", 0) is None:
        init_args["num_examples"] = CAPS["num_examples"]
    if isinstance(init_args.get("curve_eps"), list):  # the curve: its ends only
        init_args["curve_eps"] = sorted(init_args["curve_eps"])[:: max(1, len(init_args["curve_eps"]) - 1)]
    attacks = init_args.get("attacks") or []
    for attack in [*attacks, *(init_args.get("curve_attacks") or [])]:
        for key, cap in ATTACK_CAPS.items():
            if isinstance(attack, dict) and attack.get(key, 0) > cap:
                attack[key] = cap
    # standard AutoAttack has fixed budgets (minutes on CPU); it has its own test (tests/attacks)
    kept = [a for a in attacks if not (isinstance(a, dict) and a.get("name") == "autoattack")]
    if attacks and kept:
        init_args["attacks"] = kept
    # capped budgets change the metric names that audit_attacks refers to: audit the default set
    init_args.pop("audit_attacks", None)


def shrink(config: dict[str, Any], tmp: Path, data_root: Path | None = None) -> dict[str, Any]:
    """Same config, a few batches of work: 1 epoch, 2 batches per split, small evaluation budgets,
    WideResNets at depth 10 / width 1 and AutoAttack dropped where other attacks remain."""
    trainer = config.setdefault("trainer", {})
    trainer.update(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        limit_test_batches=2,
        limit_predict_batches=2,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(tmp),
    )
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(tmp / "runs"), "name": "cli"},
    }
    for callback in trainer.get("callbacks") or []:
        args = callback.setdefault("init_args", {})
        _cap(args)
        for key in ("cache_dir", "output_dir", "dirpath"):
            if key in args and args[key]:
                args[key] = str(tmp / key)
    model_args = config.get("model", {}).get("init_args", {})
    _cap(model_args)
    backbone = model_args.get("backbone", {})
    if str(backbone.get("class_path", "")).endswith("WideResNet"):  # same code path, CPU-sized
        backbone.setdefault("init_args", {}).update(depth=10, widen_factor=1)
    data_args = config.setdefault("data", {}).setdefault("init_args", {})
    data_args["batch_size"] = min(data_args.get("batch_size", 4), 4)
    data_args["eval_batch_size"] = 4
    if data_root is not None:
        data_args.update(root=str(data_root), download=False, num_workers=0, val_size=8)
    for key in ("n_train", "n_val", "n_test"):
        if key in data_args:
            data_args[key] = 64
    return config


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())
