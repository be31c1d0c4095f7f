"""Read what a robustlit run folder holds: its config and the evaluation callbacks' JSON summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ADVERSARIAL_JSON = "adversarial_evaluation_{stage}.json"
#: other evaluation summaries recorded when present (certification, calibration), test stage
OTHER_SUMMARIES = ("certification_test.json", "calibration_test.json")
#: entries left out of a shared summary (local file paths)
PRIVATE_KEYS = frozenset({"file", "path", "output_dir", "cache_dir"})


def run_dir_of(path: str | Path) -> Path:
    """The run folder of a checkpoint (``<run>/checkpoints/x.ckpt``) or the folder itself."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    return path.parent if path.name == "checkpoints" else path


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.yaml`` LightningCLI saved in the run folder (``{}`` when absent)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def read_adversarial_summary(run_dir: str | Path, stage: str = "test") -> dict[str, Any] | None:
    """The summary AdversarialEvaluation wrote for ``stage`` (``None`` when absent)."""
    path = Path(run_dir) / ADVERSARIAL_JSON.format(stage=stage)
    return json.loads(path.read_text()) if path.is_file() else None


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """Clean and per-attack robust accuracy of an adversarial summary, without per-class lists."""
    attacks = {}
    for name, result in summary.get("attacks", {}).items():
        attacks[name] = {k: v for k, v in result.items() if k != "per_class_robust_acc" and not isinstance(v, list)}
    return {"num_examples": summary.get("num_examples"), "clean_acc": summary.get("clean_acc"), "attacks": attacks}


def evaluation_summary(run_dir: str | Path) -> dict[str, Any]:
    """Every test-stage evaluation summary found in the run folder, trimmed to its scalar figures."""
    found: dict[str, Any] = {}
    adversarial = read_adversarial_summary(run_dir, "test")
    if adversarial is not None:
        found["adversarial_evaluation_test"] = headline(adversarial)
    for name in OTHER_SUMMARIES:
        path = Path(run_dir) / name
        if path.is_file():
            found[Path(name).stem] = _scalars(json.loads(path.read_text()))
    return found


def _scalars(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and depth < 4:
        kept = {k: _scalars(v, depth + 1) for k, v in value.items() if k not in PRIVATE_KEYS}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(value, bool | int | float | str):
        return value
    return None
