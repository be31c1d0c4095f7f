"""Export a trained classifier as safetensors weights plus a JSON card: no pickle to share or load.

    python -m robustlit.export runs/digits-trades/version_0/checkpoints/best.ckpt exports/digits-trades
    robustlit-export CKPT OUTDIR          # the same, as a console script

writes ``OUTDIR/model.safetensors``, ``OUTDIR/config.json`` (the card) and ``OUTDIR/README.md`` (a
model card), a folder that can be pushed to a model hub as it is; ``robustlit.load_classifier(OUTDIR)``
loads it back without unpickling. See docs/interop.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlit.checkpoint import module_from_checkpoint, read_checkpoint
from robustlit.interop.exported import CARD_FILE, README_FILE, WEIGHTS_FILE, write_export
from robustlit.models.normalize import Normalize
from robustlit.results.run_dir import evaluation_summary, read_config, run_dir_of
from robustlit.results.versions import library_versions

_NOT_HYPERPARAMETERS = {"_instantiator", "_class_path", "backbone", "num_classes", "mean", "std", "bounds"}


def export_checkpoint(
    ckpt_path: str | Path,
    outdir: str | Path,
    backbone_init_args: dict[str, Any] | None = None,
    eval_dir: str | Path | None = None,
) -> Path:
    """Write the classifier of ``ckpt_path`` (a robustlit checkpoint you trust: it is unpickled once,
    here) to ``outdir`` as model.safetensors + config.json + README.md; returns ``outdir``.

    The architecture's class path and init args come from the checkpoint's hyperparameters (runs of
    the ``robustlit`` CLI store them); a backbone built in Python needs ``backbone_init_args``. The
    card's evaluation summary is read from ``eval_dir`` (the folder of a ``robustlit test`` run),
    by default the checkpoint's own run folder (where ``test_after_fit`` writes it).
    """
    checkpoint = read_checkpoint(ckpt_path)
    module = module_from_checkpoint(checkpoint, ckpt_path)
    classifier = module.classifier
    if not (isinstance(classifier, nn.Sequential) and len(classifier) == 2 and isinstance(classifier[0], Normalize)):
        raise ValueError(
            f"{type(module).__name__}.classifier is not Sequential(Normalize, backbone); only such classifiers "
            "can be exported (a mixture or smoothed model needs its own format)"
        )
    hparams = dict(checkpoint["hyper_parameters"])
    if "backbone" not in hparams:
        raise ValueError(
            f"{type(module).__name__} has no `backbone` argument (e.g. a mixture of several models, "
            "docs/mixed_classifier.md); only Normalize -> backbone classifiers are exported"
        )
    run_dir = run_dir_of(ckpt_path)
    config = read_config(run_dir)
    card = {
        "architecture": _architecture(hparams.get("backbone"), classifier[1], backbone_init_args),
        "normalization": {"mean": _float32(classifier[0].mean), "std": _float32(classifier[0].std)},
        "bounds": list(module.bounds) if module.bounds is not None else None,
        "num_classes": int(module.num_classes),
        "training": {
            "method": f"{type(module).__module__}.{type(module).__qualname__}",
            "hyperparameters": _jsonable({k: v for k, v in hparams.items() if k not in _NOT_HYPERPARAMETERS}),
            **{key: config["model"]["init_args"][key] for key in _optimisation_keys(config)},
            "data": config.get("data"),
            "max_epochs": config.get("trainer", {}).get("max_epochs"),
            "seed": config.get("seed_everything"),
        },
        "evaluation": evaluation_summary(eval_dir if eval_dir is not None else run_dir),
        "source_checkpoint": Path(ckpt_path).name,
        "versions": library_versions(),
    }
    outdir = write_export(classifier, _jsonable(card), outdir)
    (outdir / README_FILE).write_text(model_card(json.loads((outdir / CARD_FILE).read_text()), outdir.name))
    return outdir


def _optimisation_keys(config: dict[str, Any]) -> list[str]:
    init_args = config.get("model", {}).get("init_args", {}) or {}
    return [key for key in ("optimizer", "lr_scheduler") if key in init_args]


def _architecture(stored: Any, backbone: nn.Module, init_args: dict[str, Any] | None) -> dict[str, Any]:
    if init_args is None and isinstance(stored, dict) and "class_path" in stored:
        return {"class_path": stored["class_path"], "init_args": dict(stored.get("init_args") or {})}
    if init_args is None:
        raise ValueError(
            f"the checkpoint does not record how its {type(backbone).__name__} backbone was built (a module made "
            "in Python, not by the robustlit CLI); pass its constructor arguments, e.g. "
            '--backbone-init-args \'{"num_classes": 10, "width": 32}\''
        )
    return {"class_path": f"{type(backbone).__module__}.{type(backbone).__qualname__}", "init_args": init_args}


def _float32(values: Any) -> list[float]:
    """The shortest decimals that read back as exactly the same float32 values (0.3, not 0.30000001)."""
    out = []
    for value in values.tolist():
        for digits in range(6, 10):
            short = float(f"{value:.{digits}g}")
            if torch.tensor(short, dtype=torch.float32).item() == value:
                break
        out.append(short)
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def model_card(card: dict[str, Any], name: str) -> str:
    """A README.md model card (Hugging Face front matter, then tables) generated from ``card``."""
    architecture = card["architecture"]
    lines = [
        "---",
        "library_name: robustlit",
        "tags: [adversarial-robustness, image-classification, robustlit, safetensors]",
        "---",
        f"# {name}",
        "",
        f"A classifier trained with robustlit by `{card['training']['method']}`. It maps "
        f"inputs in {card['bounds']} to {card['num_classes']} logits; input normalisation (mean "
        f"{card['normalization']['mean']}, std {card['normalization']['std']}) is the model's first layer, so "
        "attack budgets are in pixel units.",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{architecture['class_path']}` `{json.dumps(architecture.get('init_args') or {})}` |",
        f"| training method | `{card['training']['method']}` |",
        f"| hyperparameters | `{json.dumps(card['training']['hyperparameters'])}` |",
        f"| weights | `{WEIGHTS_FILE}` (safetensors) |",
        "",
    ]
    adversarial = card.get("evaluation", {}).get("adversarial_evaluation_test")
    if adversarial:
        lines += [
            f"## Evaluation (test split, {adversarial['num_examples']} examples)",
            "",
            "| attack | robust accuracy |",
            "|---|---|",
            f"| none (clean) | {100 * adversarial['clean_acc']:.2f}% |",
        ]
        lines += [f"| {k} | {_accuracy_cell(v)} |" for k, v in adversarial["attacks"].items()]
        lines.append("")
        if any(v.get("unreliable") for v in adversarial["attacks"].values()):
            lines += [
                "UNRELIABLE: the attack-failure audit (Pintor et al. 2022) found signs that this attack failed; "
                "report the per-example worst case (`ensemble`) or a stronger attack instead.",
                "",
            ]
    lines += [
        "## Use",
        "",
        "```python",
        "import robustlit",
        f'model = robustlit.load_classifier("{name}")  # no pickle: safetensors + this folder\'s config.json',
        "logits = model(x)  # x in [0, 1], NCHW",
        "```",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items()),
        "",
    ]
    return "\n".join(lines)


def _accuracy_cell(result: dict[str, Any]) -> str:
    """``62.59%``, or ``66.67% UNRELIABLE`` when the attack-failure audit flagged the number (docs/audit.md)."""
    return f"{100 * result['robust_acc']:.2f}%" + (" UNRELIABLE" if result.get("unreliable") else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m robustlit.export CKPT OUTDIR [--eval-dir RUN] [--backbone-init-args JSON]``; exit 0 on success."""
    parser = argparse.ArgumentParser(prog="robustlit-export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="robustlit checkpoint (.ckpt) to export")
    parser.add_argument("outdir", help="folder to write model.safetensors, config.json and README.md to")
    parser.add_argument("--backbone-init-args", type=json.loads, default=None, help="JSON constructor arguments")
    parser.add_argument("--eval-dir", default=None, help="`robustlit test` run folder for the card")
    args = parser.parse_args(argv)
    outdir = export_checkpoint(args.checkpoint, args.outdir, args.backbone_init_args, args.eval_dir)
    print(f"exported {args.checkpoint} to {outdir}/ ({WEIGHTS_FILE}, {CARD_FILE}, {README_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
