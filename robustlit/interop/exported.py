"""robustlit's exported-classifier format: safetensors weights plus a JSON card, no pickle anywhere.

Layout of an export folder (pushable to a model hub as it is)::

    model.safetensors   weights of ``Sequential(Normalize(mean, std), backbone)``; the card's
                        loading fields are repeated in the file's metadata, so the file alone loads
    config.json         the card (see :data:`CARD_FORMAT`)
    README.md           a model card generated from config.json

Loading imports the architecture class named in the card and instantiates it with the card's
init args; it never calls ``torch.load`` / ``pickle``. See docs/interop.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from robustlit.interop.source import build_architecture
from robustlit.models.normalize import Normalize
from robustlit.utils.file_mode import with_user_umask

CARD_FORMAT = "robustlit-classifier"
CARD_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "config.json"
README_FILE = "README.md"
#: metadata key of model.safetensors holding the fields needed to rebuild the classifier
METADATA_KEY = "robustlit_card"
_LOADING_FIELDS = ("format", "format_version", "architecture", "normalization", "bounds", "num_classes")


class ExportFormatError(ValueError):
    """A file or folder is not a robustlit export."""


def write_export(classifier: nn.Module, card: dict[str, Any], outdir: str | Path) -> Path:
    """Write ``classifier``'s weights (safetensors, with the loading fields as metadata) and ``card``
    (config.json) to ``outdir``; returns the folder. The README is written by the caller."""
    from safetensors.torch import save_file

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    card = {"format": CARD_FORMAT, "format_version": CARD_VERSION, **card, "weights": WEIGHTS_FILE}
    loading = {key: card[key] for key in _LOADING_FIELDS}
    tensors = {name: t.detach().cpu().contiguous() for name, t in classifier.state_dict().items()}
    save_file(tensors, str(outdir / WEIGHTS_FILE), metadata={METADATA_KEY: json.dumps(loading)})
    with_user_umask(outdir / WEIGHTS_FILE)  # safetensors creates its file with mode 0600
    (outdir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return outdir


def is_export(path: str | Path) -> bool:
    """A folder holding model.safetensors, or a ``.safetensors`` file."""
    path = Path(path)
    return (path.is_dir() and (path / WEIGHTS_FILE).is_file()) or (path.is_file() and path.suffix == ".safetensors")


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of an export folder (config.json), or the loading fields of a lone ``.safetensors``."""
    path = Path(path)
    if path.is_dir():
        card_path = path / CARD_FILE
        if card_path.is_file():
            return json.loads(card_path.read_text())
        path = path / WEIGHTS_FILE
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY not in metadata:
        raise ExportFormatError(
            f"{path} has no {METADATA_KEY!r} metadata: it was not written by robustlit.export. For plain "
            "safetensors weights use PretrainedClassifier with source kind 'module' (class_path + path)."
        )
    return json.loads(metadata[METADATA_KEY])


def load_export(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """``Sequential(Normalize, backbone)`` in eval mode from an export folder or ``.safetensors`` file."""
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    if card.get("format") != CARD_FORMAT:
        raise ExportFormatError(f"{path}: card format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    if int(card.get("format_version", 0)) > CARD_VERSION:
        raise ExportFormatError(f"{path}: format version {card['format_version']} is newer than this robustlit's")
    architecture, normalization = card["architecture"], card["normalization"]
    backbone = build_architecture(architecture["class_path"], architecture.get("init_args"))
    classifier = nn.Sequential(Normalize(normalization["mean"], normalization["std"]), backbone)
    weights = path / card.get("weights", WEIGHTS_FILE) if path.is_dir() else path
    classifier.load_state_dict(load_file(str(weights), device=str(map_location)))
    return classifier.to(map_location).eval()
