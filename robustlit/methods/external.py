"""Evaluate a classifier trained outside robustlit with robustlit's attacks, certificates and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor

from robustlit.interop.source import InputNormalization, ModelSource, build_model
from robustlit.methods.base import RobustClassifier
from robustlit.utils.errors import FieldError, one_line

NormalizationSpec = Literal["inside", "data"] | InputNormalization


def resolve_normalization(
    source: ModelSource,
    normalization: NormalizationSpec,
    data_mean: Sequence[float],
    data_std: Sequence[float],
) -> tuple[list[float], list[float]]:
    """Mean/std of the ``Normalize`` layer placed in front of the external model, applied exactly once.

    ``inside``: the model normalises its [0, 1] inputs itself, so robustlit's layer is the identity
    (mean 0, std 1) whatever the data module links in; ``data``: the data module's statistics (the
    model was trained on inputs normalised with them, as robustlit models are); explicit mean/std:
    those. Sources whose models always normalise inside (RobustBench zoo, robustlit exports) only
    accept ``inside``, so their inputs are never normalised twice.
    """
    if source.normalises_inside and normalization != "inside":
        raise ValueError(
            f"source kind {source.kind!r} normalises inside the model; set normalization: inside (got "
            f"{normalization!r}), otherwise its inputs would be normalised twice"
        )
    if normalization == "inside":
        return [0.0], [1.0]
    if normalization == "data":
        return [float(m) for m in data_mean], [float(s) for s in data_std]
    if not isinstance(normalization, InputNormalization):
        raise TypeError(f"normalization must be 'inside', 'data' or mean/std; got {normalization!r}")
    return list(normalization.mean), list(normalization.std)


class PretrainedClassifier(RobustClassifier):
    """An externally trained classifier wrapped for evaluation only (no training), see docs/interop.md.

    ``classifier = Sequential(Normalize(mean, std), model)`` where ``model`` comes from ``source`` (a
    class path plus a safetensors / ``.pt`` state_dict, a TorchScript file, a RobustBench zoo model
    on disk, or a robustlit export) and ``Normalize`` follows ``normalization`` (stated once, see
    :func:`resolve_normalization`)::

        robustlit test --config configs/eval/pretrained_digits.yaml \\
            --model.init_args.source.path backbone.safetensors

    Args:
        source: where the model comes from (:class:`robustlit.interop.ModelSource`).
        normalization: ``inside``, ``data`` or ``{mean: [...], std: [...]}``.
        num_classes, mean, std, bounds: linked from the DataModule by the CLI; ``mean``/``std`` are
            used only with ``normalization: data``.
    """

    #: the weights come from ``source``, not from fit: ``robustlit test`` needs no ``--ckpt_path``
    ready_without_checkpoint = True

    def __init__(
        self,
        source: ModelSource,
        normalization: NormalizationSpec,
        num_classes: int = 10,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        bounds: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        norm_mean, norm_std = resolve_normalization(source, normalization, mean, std)
        try:
            model = build_model(source)
        except (OSError, RuntimeError) as error:  # a missing, unreadable or mismatching weights file
            raise FieldError("source.path", one_line(error)) from error
        except (ImportError, TypeError, ValueError) as error:  # the architecture cannot be built
            raise FieldError("source", one_line(error)) from error
        super().__init__(model, num_classes=num_classes, mean=norm_mean, std=norm_std, bounds=bounds)
        self.source = source
        self._checked_output = False

    def forward(self, x: Tensor) -> Tensor:
        logits = self.classifier(x)
        if not self._checked_output:
            if logits.dim() != 2 or logits.shape[1] != self.num_classes:
                raise ValueError(
                    f"the {self.source.kind} model returned shape {tuple(logits.shape)}; expected (N, "
                    f"{self.num_classes}) logits for the data module's {self.num_classes} classes"
                )
            self._checked_output = True
        return logits

    def training_step(self, *args: Any, **kwargs: Any) -> Tensor:
        raise RuntimeError("PretrainedClassifier evaluates an external model; use `robustlit test` or `validate`")

    def configure_optimizers(self) -> None:  # type: ignore[override]
        raise RuntimeError("PretrainedClassifier is evaluation-only; use `robustlit test` or `validate`, not `fit`")
