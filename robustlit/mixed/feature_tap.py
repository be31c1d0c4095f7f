"""Forward hooks that collect intermediate features of a base model (input of the mixing network).

Bai, Anderson, Kim, Sojoudi (2023), "Improving the Accuracy-Robustness Trade-Off of Classifiers via
Adaptive Smoothing", arXiv 2301.12554: the mixing network reads intermediate feature maps of both
base models; see docs/mixed_classifier.md. Pure torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from torch import Tensor, nn

__all__ = ["FeatureTap"]


class FeatureTap:
    """Forward hooks on named submodules that keep their outputs of the latest forward.

    ``layer_names`` are names as listed by ``model.named_modules()`` (e.g. ``"layer1"``,
    ``"block1.layer.0"``). A module called several times in one forward keeps its last output.
    The tapped tensors are stored as they are (not detached), so gradients flow through them.

    Use as a context manager (hooks are removed on exit) or call :meth:`remove` yourself::

        with FeatureTap(model, ["layer1", "layer2"]) as tap:
            logits = model(x)
            f1, f2 = tap.features
    """

    def __init__(self, model: nn.Module, layer_names: Sequence[str]) -> None:
        if isinstance(layer_names, str):
            raise TypeError("layer_names must be a sequence of names, not a single string")
        self.layer_names = list(layer_names)
        modules = dict(model.named_modules())
        missing = [name for name in self.layer_names if name not in modules]
        if missing:
            available = ", ".join(repr(n) for n in modules if n) or "(none: the model has no submodules)"
            raise KeyError(
                f"{type(model).__name__} has no submodule(s) {missing}. Available names "
                f"(from model.named_modules()): {available}"
            )
        self._outputs: dict[str, Tensor] = {}
        self._handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.layer_names]

    def _hook(self, name: str) -> Callable[[nn.Module, tuple, object], None]:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"FeatureTap: submodule {name!r} returned {type(output).__name__}, expected a Tensor; "
                    "tap a submodule that returns a single tensor"
                )
            self._outputs[name] = output

        return hook

    @property
    def features(self) -> list[Tensor]:
        """Outputs of the tapped layers in the order of ``layer_names`` (latest forward)."""
        missing = [name for name in self.layer_names if name not in self._outputs]
        if missing:
            raise RuntimeError(f"FeatureTap: layers {missing} did not run in the last forward")
        return [self._outputs[name] for name in self.layer_names]

    def clear(self) -> None:
        """Forget the stored outputs (releases their autograd graphs)."""
        self._outputs.clear()

    def remove(self) -> None:
        """Remove the hooks and forget the stored outputs."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
