"""robustlit's exported-classifier format: safetensors weights plus a JSON card, no pickle anywhere.

Layout of an export folder (pushable to a model hub as it is)::

    model.safetensors   weights of ``Sequential(Normalize(mean, std), backbone)``; the card's
                        loading fields are repeated in the file's metadata, so the file alone loads
    config.json         the card (see :data:`CARD_FORMAT`)
    README.md           a model card generated from config.json

Loading imports the architecture class named in the card and instantiates it with the card's
init args; it never calls ``torch.load`` / ``pickle``. The card (and the file's metadata) holds
``weights_sha256``, the SHA-256 of the weights (:func:`robustlit.utils.integrity.weights_checksum`): loading
recomputes it and refuses a file whose weights changed (a flipped exponent bit in 4 weights used to load
silently and take the accuracy from 94.5 % to 30.9 %). Exports of format version 1 predate it and load
unchecked. See docs/interop.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from robustlit.interop.source import build_architecture
from robustlit.models.normalize import Normalize
from robustlit.utils.file_mode import with_user_umask
from robustlit.utils.integrity import CheckpointError, weights_checksum

CARD_FORMAT = "robustlit-classifier"
CARD_VERSION = 2  # 2: weights_sha256 (required from this version on)
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "config.json"
README_FILE = "README.md"
#: metadata key of model.safetensors holding the fields needed to rebuild the classifier
METADATA_KEY = "robustlit_card"
_LOADING_FIELDS = (
    "format",
    "format_version",
    "architecture",
    "normalization",
    "bounds",
    "num_classes",
    "weights_sha256",
)


class ExportFormatError(ValueError):
    """A file or folder is not a robustlit export."""


def write_export(classifier: nn.Module, card: dict[str, Any], outdir: str | Path) -> Path:
    """Write ``classifier``'s weights (safetensors, with the loading fields as metadata) and ``card``
    (config.json) to ``outdir``; returns the folder. The README is written by the caller."""
    from safetensors.torch import save_file

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in classifier.state_dict().items()}
    card = {"format": CARD_FORMAT, "format_version": CARD_VERSION, **card, "weights": WEIGHTS_FILE}
    card["weights_sha256"] = weights_checksum(tensors)
    loading = {key: card[key] for key in _LOADING_FIELDS}
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
    state = load_file(str(weights), device="cpu")
    check_weights(state, card, weights)
    classifier.load_state_dict(state)
    return classifier.to(map_location).eval()


def check_weights(state: dict[str, Any], card: dict[str, Any], weights: Path) -> None:
    """Raise :class:`~robustlit.utils.integrity.CheckpointError` naming ``weights`` unless their SHA-256 equals the
    card's ``weights_sha256`` (required from format version 2)."""
    stored = card.get("weights_sha256")
    if stored is None:
        if int(card.get("format_version", 0)) >= 2:
            raise CheckpointError(f"{weights}: the card has no weights_sha256, which format version 2 requires")
        return  # format version 1: written before exports carried a checksum
    now = weights_checksum(state)
    if now != stored:
        raise CheckpointError(
            f"{weights}: the weights do not match the SHA-256 in the export's card ({stored[:12]}..., now "
            f"{now[:12]}...): the file was changed or corrupted after it was exported. Export the checkpoint "
            "again or copy the folder again; never evaluate it as it is."
        )
