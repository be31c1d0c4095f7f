"""Several runs' test-stage robustness summaries as markdown leaderboards: one table per threat model.

Two robust accuracies are comparable only on the same dataset, norm, radius and number of examples, so
runs are grouped by (dataset, norm, eps, examples) and each group gets its own table, ranked by its lowest
robust accuracy. A run whose attacks use several radii appears in each of their tables, with the attacks
of that radius only (its per-example worst case, computed over all its attacks, is shown only where all
of them share the table's threat model). A number the attack-failure audit flagged reads ``UNRELIABLE``
(docs/audit.md). Runs are labelled by the shortest end of their path that tells them apart.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from robustlit.results.labels import architecture_label, dataset_label, method_label, summary_labels
from robustlit.results.robustbench_format import format_eps
from robustlit.results.run_dir import read_adversarial_summary, read_config

UNRELIABLE = "UNRELIABLE"


def run_labels(run_dirs: list[str | Path]) -> list[str]:
    """For each run folder, the shortest end of its resolved path (at least ``<name>/<version>``) that no
    other folder of the list shares: ``a/runs/x/version_0`` and ``b/runs/x/version_0`` become
    ``a/runs/x/version_0`` and ``b/runs/x/version_0``, not twice ``x/version_0``."""
    parts = [Path(d).resolve().parts for d in run_dirs]
    labels = []
    for mine in parts:
        for k in range(min(2, len(mine)), len(mine) + 1):
            label = mine[-k:]
            if sum(1 for other in parts if other[-k:] == label) == sum(1 for other in parts if other == mine):
                break
        labels.append("/".join(label).lstrip("/") or "/")
    return labels


def threat_model_of(spec: dict[str, Any]) -> tuple[str, str]:
    """(norm, eps as RobustBench writes it) of an attack's spec record."""
    return str(spec["norm"]), format_eps(float(spec["eps"]), str(spec["norm"]), spec.get("eps_text"))


def leaderboard_rows(run_dirs: list[str | Path]) -> list[dict[str, Any]]:
    """One row per run and threat model: labels, the threat model, number of examples, clean accuracy, each
    attack's robust accuracy and whether the audit flagged it, and the per-example worst case where every
    attack of the run shares that threat model. Sorted by group, then by the lowest robust accuracy."""
    rows = []
    unique = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    for run_dir, label in zip(unique, run_labels(unique), strict=True):
        summary = read_adversarial_summary(run_dir, "test")
        if summary is None:
            raise FileNotFoundError(f"{run_dir} has no adversarial_evaluation_test.json; run `robustlit test` first")
        config, labels = read_config(run_dir), summary_labels(summary)
        attacks = {name: res for name, res in summary.get("attacks", {}).items() if name != "ensemble"}
        groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        for name, res in attacks.items():
            groups[threat_model_of(res["spec"])][name] = res
        for (norm, eps), members in groups.items():
            if len(groups) == 1 and "ensemble" in summary.get("attacks", {}):
                members = {**members, "ensemble": summary["attacks"]["ensemble"]}
            rows.append(
                {
                    "run": label,
                    "method": labels.get("method") or method_label(config),
                    "architecture": labels.get("architecture") or architecture_label(config),
                    "dataset": labels.get("dataset") or dataset_label(config),
                    "norm": norm,
                    "eps": eps,
                    "num_examples": summary["num_examples"],
                    "clean_acc": summary["clean_acc"],
                    "robust_acc": {name: res["robust_acc"] for name, res in members.items()},
                    "unreliable": sorted(name for name, res in members.items() if res.get("unreliable")),
                }
            )
    return sorted(rows, key=lambda r: (*group_key(r), -min(r["robust_acc"].values(), default=r["clean_acc"])))


def group_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    """(dataset, norm, eps, examples): the rows of one table."""
    return row["dataset"], row["norm"], row["eps"], row["num_examples"]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    attacks = sorted({name for row in rows for name in row["robust_acc"]} - {"ensemble"})
    if any("ensemble" in row["robust_acc"] for row in rows):
        attacks.append("ensemble")
    header = ["#", "run", "method", "architecture", "clean", *attacks]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", *["---"] * 3, *["---:"] * (len(header) - 4)]) + "|",
    ]
    for rank, row in enumerate(rows, start=1):
        cells = [str(rank), row["run"], row["method"], row["architecture"], f"{100 * row['clean_acc']:.2f}"]
        for attack in attacks:
            if attack not in row["robust_acc"]:
                cells.append("-")
                continue
            flag = f" {UNRELIABLE}" if attack in row["unreliable"] else ""
            cells.append(f"{100 * row['robust_acc'][attack]:.2f}{flag}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def leaderboard_markdown(run_dirs: list[str | Path]) -> str:
    """Markdown: one ``## <dataset>, <norm> eps <eps>, <n> examples`` section and table per threat model.

    Columns are robustlit's metric names (attack, budget, norm, eps), so a number is only compared with the
    same attack; ``ensemble`` counts an example robust only if every attack of that run failed on it; ``-``
    marks an attack a run did not use; ``UNRELIABLE`` a number the attack-failure audit flagged.
    """
    grouped: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in leaderboard_rows(run_dirs):
        grouped[group_key(row)].append(row)
    lines: list[str] = []
    for (dataset, norm, eps, n), rows in grouped.items():
        lines += [f"## {dataset}, {norm} eps {eps}, {n} examples", "", *_table(rows), ""]
    lines.append(
        "Accuracies in % on the test split (each example counted once), one table per dataset, threat model and "
        "number of examples, ranked by the lowest robust accuracy. UNRELIABLE: the attack-failure audit flagged "
        "the number (docs/audit.md)."
    )
    return "\n".join(lines) + "\n"
