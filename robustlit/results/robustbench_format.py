"""An AutoAttack result as a RobustBench model-info file (Croce et al., 2021, "RobustBench: a
standardized adversarial robustness benchmark", NeurIPS Datasets and Benchmarks).

RobustBench keeps one JSON per model, ``model_info/<dataset>/<threat_model>/<model ID>.json``, the model
ID (``Zhang2019Theoretically``: first author, year, first word of the title) being the file's name. Its
conventions, which the file written here follows exactly (docs/interop.md):

- the keys ``link``, ``name`` (the *paper title*), ``authors``, ``additional_data`` (bool),
  ``number_forward_passes`` (int), ``dataset``, ``venue``, ``architecture``, ``eps``, ``clean_acc``,
  ``reported``, ``autoattack_acc``, in that order; optionally ``external`` (the best known robust
  accuracy, when another attack found less than AutoAttack), ``footnote`` and ``unreliable``;
- accuracies as percentage strings with two decimals (``"53.08"``, ``"25.00"``), Linf radii that are
  multiples of 1/255 as fractions (``"8/255"``);
- ``reported`` is the number the *paper* reports, ``""`` when it reports none: never our own measurement.

What robustlit knows beyond these fields (threat model, number of examples, the metric, library
versions) goes into a second file beside it, ``<model ID>.robustlit.json``, so the model-info file
itself can be submitted as it is.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from robustlit.results.labels import architecture_label, dataset_label, summary_labels
from robustlit.results.run_dir import read_adversarial_summary, read_config
from robustlit.results.versions import library_versions
from robustlit.utils.atomic import write_text_atomically

#: RobustBench's keys in the order its files list them; ``external``, ``footnote`` and ``unreliable`` are
#: optional (written when known)
ROBUSTBENCH_KEYS = (
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
    "autoattack_acc",
    "external",
    "footnote",
    "unreliable",
)
#: examples of RobustBench's protocol per dataset: the first 10,000 test images (ImageNet: a fixed 5,000)
PROTOCOL_EXAMPLES = {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000, "mnist": 10_000}
PROVENANCE_SUFFIX = ".robustlit.json"


class TooFewExamplesWarning(UserWarning):
    """A RobustBench file measured on fewer examples than RobustBench's protocol uses."""


def format_eps(eps: float, norm: str, text: str | None = None) -> str:
    """RobustBench's spelling of a radius: a fraction as written (``8/255``), else a short decimal when it
    is exact (``0.5``, ``0.031``, ``0.3``), else a Linf multiple of 1/255 as a fraction, else four
    significant digits."""
    if text and "/" in text:
        return text
    short = f"{eps:.4g}"
    if float(short) == eps:
        return short
    if norm.lower() == "linf":
        steps = round(eps * 255)
        if steps > 0 and abs(eps * 255 - steps) < 1e-6:
            return f"{steps}/255"
    return short


def percent(accuracy: float) -> str:
    """``0.53084 -> "53.08"``, ``0.25 -> "25.00"``: two decimals, as RobustBench's model-info files write them."""
    return f"{100 * accuracy:.2f}"


def protocol_examples(dataset: str, dataset_size: int | None = None) -> int | None:
    """How many test examples RobustBench's protocol evaluates on ``dataset`` (the whole test split, at most
    10,000, for a dataset RobustBench does not list); ``None`` when unknown."""
    known = PROTOCOL_EXAMPLES.get(dataset)
    if known is not None:
        return min(known, dataset_size) if dataset_size else known
    return dataset_size


def autoattack_result(summary: dict[str, Any], metric: str | None = None) -> tuple[str, dict[str, Any]]:
    """The (metric name, result) of the standard-AutoAttack entry of an adversarial summary."""
    attacks = summary.get("attacks", {})
    found = {k: v for k, v in attacks.items() if (v.get("spec") or {}).get("name") == "autoattack"}
    if metric is not None:
        found = {k: v for k, v in found.items() if k == metric}
    if len(found) != 1:
        raise ValueError(
            f"need exactly one AutoAttack result in the test summary, found {sorted(found) or 'none'} among "
            f"{sorted(attacks)}; add `- {{name: autoattack, norm: Linf, eps: 8/255}}` to the AdversarialEvaluation "
            "attacks and run `robustlit test` (or `robustlit evaluate --attacks standard`), or pick one with --attack"
        )
    return next(iter(found.items()))


def _best_known(summary: dict[str, Any], result: dict[str, Any]) -> float | None:
    """The per-example worst case over every attack run at AutoAttack's threat model, when it is below AutoAttack's
    number (RobustBench's ``external``); ``None`` otherwise."""
    spec = result["spec"]
    attacks = {k: v for k, v in summary.get("attacks", {}).items() if k != "ensemble"}
    same = all(
        (v["spec"]["norm"], float(v["spec"]["eps"])) == (spec["norm"], float(spec["eps"])) for v in attacks.values()
    )
    ensemble = summary.get("attacks", {}).get("ensemble")
    if not same or ensemble is None or len(attacks) < 2:
        return None
    return ensemble["robust_acc"] if ensemble["robust_acc"] < result["robust_acc"] else None


def model_info(
    summary: dict[str, Any],
    *,
    dataset: str,
    architecture: str,
    name: str = "",
    link: str = "",
    authors: str = "",
    venue: str = "",
    additional_data: bool = False,
    number_forward_passes: int = 1,
    reported: str = "",
    footnote: str | None = None,
    attack: str | None = None,
) -> dict[str, Any]:
    """RobustBench's model-info dictionary of an adversarial summary (keys in RobustBench's order).

    ``clean_acc`` is measured on the same examples AutoAttack ran on, as RobustBench's ``benchmark`` reports
    it. ``name`` is the paper's title; ``reported`` the paper's own robust accuracy (``""``: none). When
    the summary's other attacks (same threat model) broke examples AutoAttack missed, their per-example worst
    case is RobustBench's ``external`` (best known robust accuracy). ``unreliable`` is written when the
    attack-failure audit examined the AutoAttack result (docs/audit.md).
    """
    _, result = autoattack_result(summary, attack)
    spec = result["spec"]
    info: dict[str, Any] = {
        "link": link,
        "name": name,
        "authors": authors,
        "additional_data": bool(additional_data),
        "number_forward_passes": int(number_forward_passes),
        "dataset": dataset,
        "venue": venue,
        "architecture": architecture,
        "eps": format_eps(float(spec["eps"]), str(spec["norm"]), spec.get("eps_text")),
        "clean_acc": percent(summary["clean_acc"]),
        "reported": str(reported),
        "autoattack_acc": percent(result["robust_acc"]),
    }
    best = _best_known(summary, result)
    if best is not None:
        info["external"] = percent(best)
    if footnote is not None:
        info["footnote"] = footnote
    if "unreliable" in result:
        info["unreliable"] = bool(result["unreliable"])
    return info


def provenance(summary: dict[str, Any], attack: str | None = None) -> dict[str, Any]:
    """What robustlit records beside the model-info file: the metric, threat model, examples and versions."""
    metric, result = autoattack_result(summary, attack)
    spec = result["spec"]
    return {
        "robustlit_metric": metric,
        "threat_model": spec["norm"],
        "eps": float(spec["eps"]),
        "eps_text": spec.get("eps_text") or format_eps(float(spec["eps"]), str(spec["norm"])),
        "n_examples": summary["num_examples"],
        "dataset_size": summary.get("dataset_size"),
        "attacks": {
            name: {k: v for k, v in res.items() if k in ("robust_acc", "unreliable")}
            for name, res in summary.get("attacks", {}).items()
        },
        "versions": summary.get("versions") or library_versions(),
    }


def check_example_count(summary: dict[str, Any], dataset: str) -> str | None:
    """Warn (:class:`TooFewExamplesWarning`) when the summary counts fewer examples than RobustBench's protocol;
    returns the message, or ``None`` when the count is the protocol's."""
    n, size = int(summary["num_examples"]), summary.get("dataset_size")
    wanted = protocol_examples(dataset, size)
    if wanted is None or n >= wanted:
        return None
    message = (
        f"this RobustBench file counts {n} examples; RobustBench's protocol evaluates the first {wanted} test "
        f"examples of {dataset}: set num_examples (robustlit evaluate --n-examples) to {wanted} before comparing "
        "it with a leaderboard entry"
    )
    warnings.warn(message, TooFewExamplesWarning, stacklevel=3)
    return message


def robustbench_model_info(
    run_dir: str | Path,
    *,
    dataset: str | None = None,
    architecture: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """:func:`model_info` of a run folder's test-stage AdversarialEvaluation summary; the dataset and
    architecture are read from the run's ``config.yaml`` unless given."""
    summary, labels = _run(Path(run_dir), dataset, architecture)
    return model_info(summary, **labels, **fields)


def valid_model_id(model_id: str) -> str:
    """A RobustBench model ID is a file name: letters, digits, ``_``, ``-``, ``.`` (``Zhang2019Theoretically``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", model_id or ""):
        raise ValueError(
            f"model ID {model_id!r} is not a file name; RobustBench names a model <FirstAuthor><Year><FirstWord>, "
            "e.g. Zhang2019Theoretically"
        )
    return model_id


def write_model_info(
    summary: dict[str, Any], out_dir: str | Path, model_id: str, *, attack: str | None = None, **fields: Any
) -> Path:
    """Write ``<out_dir>/<model_id>.json`` (:func:`model_info`, RobustBench's format) and
    ``<out_dir>/<model_id>.robustlit.json`` (:func:`provenance`); warn when fewer examples than the protocol's
    were evaluated. Returns the model-info file."""
    path = Path(out_dir) / f"{valid_model_id(model_id)}.json"
    info = model_info(summary, attack=attack, **fields)
    extra = provenance(summary, attack)
    note = check_example_count(summary, info["dataset"])
    if note is not None:
        extra["warning"] = note
    write_text_atomically(path, json.dumps(info, indent=2) + "\n")
    write_text_atomically(path.with_name(path.stem + PROVENANCE_SUFFIX), json.dumps(extra, indent=2) + "\n")
    return path


def default_model_id(run_dir: str | Path) -> str:
    """The logger's name of a ``<save_dir>/<name>/version_N`` run folder (``digits-trades``), else the folder's."""
    run_dir = Path(run_dir).resolve()
    name = run_dir.parent.name if run_dir.name.startswith("version_") else run_dir.name
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", name).lstrip(".-_") or "model"


def write_robustbench_model_info(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    model_id: str | None = None,
    dataset: str | None = None,
    architecture: str | None = None,
    **fields: Any,
) -> Path:
    """:func:`write_model_info` of a run folder (default ``out_dir``: the run folder; default ``model_id``: the
    run's logger name)."""
    run_dir = Path(run_dir)
    summary, labels = _run(run_dir, dataset, architecture)
    folder = out_dir if out_dir is not None else run_dir
    return write_model_info(summary, folder, model_id or default_model_id(run_dir), **labels, **fields)


def _run(run_dir: Path, dataset: str | None, architecture: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """A run folder's test summary and its dataset/architecture labels (given, else recorded, else from its config)."""
    summary = read_adversarial_summary(run_dir, "test")
    if summary is None:
        raise FileNotFoundError(f"{run_dir} has no adversarial_evaluation_test.json; run `robustlit test` first")
    config, recorded = read_config(run_dir), summary_labels(summary)
    return summary, {
        "dataset": dataset or recorded.get("dataset") or dataset_label(config),
        "architecture": architecture or recorded.get("architecture") or architecture_label(config),
    }
