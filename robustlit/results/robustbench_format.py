"""A run's AutoAttack result as a RobustBench model-info file (Croce et al., 2021, "RobustBench: a
standardized adversarial robustness benchmark", NeurIPS Datasets and Benchmarks).

RobustBench keeps one JSON per model under ``model_info/<dataset>/<threat_model>/<ModelName>.json``;
accuracies are percentage strings with two decimals ("53.08") and Linf radii are written as
fractions of 255 ("8/255"). See docs/interop.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustlit.results.labels import architecture_label, dataset_label
from robustlit.results.run_dir import read_adversarial_summary, read_config
from robustlit.results.versions import library_versions

MODEL_INFO_FILE = "robustbench_model_info.json"


def format_eps(eps: float, norm: str) -> str:
    """RobustBench's spelling of a radius: a short decimal when it is exact (``0.5``, ``0.031``, ``0.3``),
    else a Linf multiple of 1/255 as a fraction (``8/255``), else four significant digits."""
    short = f"{eps:.4g}"
    if float(short) == eps:
        return short
    if norm.lower() == "linf":
        steps = round(eps * 255)
        if steps > 0 and abs(eps * 255 - steps) < 1e-6:
            return f"{steps}/255"
    return short


def percent(accuracy: float) -> str:
    """``0.53084 -> "53.08"``, as ``robustbench.utils.update_json`` writes accuracies."""
    return str(round(100 * accuracy, 2))


def autoattack_result(summary: dict[str, Any], metric: str | None = None) -> tuple[str, dict[str, Any]]:
    """The (metric name, result) of the standard-AutoAttack entry of an adversarial summary."""
    attacks = summary.get("attacks", {})
    found = {k: v for k, v in attacks.items() if (v.get("spec") or {}).get("name") == "autoattack"}
    if metric is not None:
        found = {k: v for k, v in found.items() if k == metric}
    if len(found) != 1:
        raise ValueError(
            f"need exactly one AutoAttack result in the test summary, found {sorted(found) or 'none'} among "
            f"{sorted(attacks)}; add `- {{name: autoattack, norm: Linf, eps: 0.03137}}` to the AdversarialEvaluation "
            "attacks and run `robustlit test`, or pick one with --attack"
        )
    return next(iter(found.items()))


def robustbench_model_info(
    run_dir: str | Path,
    *,
    name: str | None = None,
    link: str = "",
    authors: str = "",
    venue: str = "",
    additional_data: bool = False,
    number_forward_passes: int = 1,
    reported: str | None = None,
    footnote: str | None = None,
    dataset: str | None = None,
    architecture: str | None = None,
    attack: str | None = None,
) -> dict[str, Any]:
    """The model-info dictionary of the run folder's test-stage AdversarialEvaluation summary.

    ``clean_acc`` is the clean accuracy on the same examples AutoAttack ran on, as RobustBench's
    ``benchmark`` reports it; ``reported`` defaults to the measured AutoAttack accuracy.
    """
    run_dir = Path(run_dir)
    summary = read_adversarial_summary(run_dir, "test")
    if summary is None:
        raise FileNotFoundError(f"{run_dir} has no adversarial_evaluation_test.json; run `robustlit test` first")
    config = read_config(run_dir)
    metric, result = autoattack_result(summary, attack)
    spec = result["spec"]
    autoattack_acc = percent(result["robust_acc"])
    info: dict[str, Any] = {
        "link": link,
        "name": name or run_dir.resolve().parent.name,
        "authors": authors,
        "additional_data": additional_data,
        "number_forward_passes": number_forward_passes,
        "dataset": dataset or dataset_label(config),
        "venue": venue,
        "architecture": architecture or architecture_label(config),
        "eps": format_eps(float(spec["eps"]), str(spec["norm"])),
        "clean_acc": percent(summary["clean_acc"]),
        "reported": reported if reported is not None else autoattack_acc,
        "autoattack_acc": autoattack_acc,
        "footnote": footnote,
        "threat_model": spec["norm"],
        "n_examples": summary["num_examples"],
        "robustlit_metric": metric,
        "versions": summary.get("versions") or library_versions(),
    }
    if "unreliable" in result:
        info["unreliable"] = bool(result["unreliable"])
    return info


def write_robustbench_model_info(run_dir: str | Path, out: str | Path | None = None, **fields: Any) -> Path:
    """Write :func:`robustbench_model_info` to ``out`` (default ``<run_dir>/robustbench_model_info.json``)."""
    path = Path(out) if out is not None else Path(run_dir) / MODEL_INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(robustbench_model_info(run_dir, **fields), indent=2) + "\n")
    return path
