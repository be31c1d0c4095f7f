"""Load a trained classifier from a robustlit checkpoint, ready for any attack library."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from robustlit.utils.integrity import CheckpointError, unreadable_checkpoint, verify_checkpoint

#: Checkpoint entry holding the import path of the method that wrote it (set by RobustClassifier).
CLASS_PATH_KEY = "robustlit_class_path"
#: Import paths that moved, old -> new, so that checkpoints written before the move still load.
MOVED_CLASS_PATHS = {
    "robustlit.methods.mixed.MixedClassifierModule": "robustlit.mixed.module.MixedClassifierModule",
    "robustlit.methods.label_smoothing.ARAdaLS": "robustlit.methods.ar_adals.ARAdaLS",
}


def read_checkpoint(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw Lightning checkpoint dictionary of a robustlit run (unpickled: trusted files only)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path.resolve()}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001 - torch raises several types for truncated/corrupt files
        raise unreadable_checkpoint(path, error) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise CheckpointError(f"{path} is not a Lightning checkpoint of a robustlit method")
    verify_checkpoint(checkpoint, path)  # the stored weight checksum, and finite weights
    return checkpoint


def load_module(ckpt_path: str | Path, map_location: str | torch.device = "cpu"):  # noqa: ANN201
    """The full LightningModule (method, hyperparameters, weights) stored in ``ckpt_path``, in eval mode.

    Checkpoints are unpickled (``weights_only=False``: a backbone passed as a module in user code is
    stored as an object), so load only checkpoints you trust; share models as exports instead
    (``python -m robustlit.export``, docs/interop.md).
    """
    return module_from_checkpoint(read_checkpoint(ckpt_path, map_location), ckpt_path, map_location)


def module_from_checkpoint(checkpoint: dict, ckpt_path: str | Path, map_location: str | torch.device = "cpu"):  # noqa: ANN201
    """Rebuild the method stored in a checkpoint dictionary read (and verified) by :func:`read_checkpoint`."""
    path = Path(ckpt_path)
    class_path = checkpoint.get(CLASS_PATH_KEY) or checkpoint["hyper_parameters"].get("_class_path")
    method = _import_method(class_path, path)
    try:
        return _rebuild(method, checkpoint).to(map_location)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(f"cannot rebuild the {method.__name__} stored in {path}: {error}") from error


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """``nn.Module`` in eval mode mapping [0, 1] inputs to logits (normalisation inside).

    ``path`` is an export written by ``python -m robustlit.export`` (a folder holding
    ``model.safetensors``, or that ``.safetensors`` file): loaded without unpickling anything; or a
    Lightning checkpoint (``.ckpt``): unpickled, so load only checkpoints you trust. Ready for
    torchattacks, AutoAttack or RobustBench-style evaluation::

        model = robustlit.load_classifier("exports/digits-trades")
        x_adv = torchattacks.PGD(model, eps=8/255)(x, y)
    """
    from robustlit.interop.exported import is_export, load_export

    if is_export(path):
        return load_export(path, str(map_location))
    if Path(path).is_dir():
        raise CheckpointError(f"{path} is a folder without model.safetensors: not a robustlit export")
    return load_module(path, map_location).classifier.eval()


def _rebuild(method: type, checkpoint: dict):  # noqa: ANN202 - returns a RobustClassifier
    """Instantiate ``method`` from the stored hyperparameters, then load module state and weights.

    Lightning's ``load_from_checkpoint`` called on a base class without ``**kwargs`` drops the stored
    class path and builds the base class; here the class is resolved first, and CLI-saved nested
    ``class_path`` configs (the backbone) are built with jsonargparse.
    """
    from jsonargparse import ArgumentParser

    hparams = dict(checkpoint["hyper_parameters"])
    from_cli = hparams.pop("_instantiator", None) is not None
    hparams.pop("_class_path", None)
    if from_cli:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(method, "module", fail_untyped=False)
        module = parser.instantiate_classes(parser.parse_object({"module": hparams})).module
    else:
        module = method(**hparams)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def _import_method(class_path: str | None, path: Path) -> type:
    """The LightningModule class named in the checkpoint."""
    from robustlit.methods.base import RobustClassifier

    if not class_path:
        raise CheckpointError(f"{path} does not say which robustlit method wrote it")
    class_path = MOVED_CLASS_PATHS.get(class_path, class_path)
    module_name, _, name = class_path.rpartition(".")
    try:
        method = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(
            f"{path} was written by {class_path}, which cannot be imported ({error}). Put the module that "
            "defines it on PYTHONPATH (or import it) before loading."
        ) from error
    if not (isinstance(method, type) and issubclass(method, RobustClassifier)):
        raise CheckpointError(f"{path} names {class_path}, which is not a robustlit method (RobustClassifier)")
    return method
