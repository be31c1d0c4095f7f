"""Mixed classifier of a standard and a robust model (Adaptive Smoothing, Bai et al. 2023).

Plain ``nn.Module`` parts, no Lightning (docs/mixed_classifier.md):

- :class:`FeatureTap` collects intermediate outputs of named submodules during a forward.
- :class:`MixingNetwork` maps the tapped features of both base models to a per-example mixing
  weight alpha(x) (the "adapted adversarial detector").
- :class:`MixedClassifier` returns ``log((1 - alpha) softmax(s_g z_g) + alpha softmax(s_h z_h))``
  (log-probabilities, docs/contracts.md), with alpha constant or from the mixing network.

Gradients flow through alpha and through the tapped features (nothing is detached), so an attack
on the mixed classifier also attacks the mixing network, as the paper's adaptive evaluation does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlit.losses.mixture import mix_log_probs

__all__ = ["FeatureTap", "MixedClassifier", "MixingNetwork"]


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


class MixingNetwork(nn.Module):
    """Mixing network: tapped features of both base models -> alpha(x) in [0, 1] (docs/mixed_classifier.md).

    A simplified version of the paper's detector. Each input feature (NCHW map, or (N, D) vector
    treated as a 1x1 map) is projected to ``width`` channels by a 1x1 convolution and batch norm,
    average-pooled to the smallest spatial size among the inputs, and the projections are summed.
    Then ``depth`` 3x3 conv + ReLU layers, global average pooling and a linear map (no bias) give a
    raw score per example. Output head, as in the reference implementation:

    - training mode: the raw score is clamped to batch mean +- ``train_clamp_std`` * batch std
      (bounds not differentiated), so the output batch norm sees no outliers;
    - ``BatchNorm1d(1, affine=False, momentum=0.01)``;
    - ``gamma = bn * gamma_scale + gamma_bias`` (``eval_gamma_scale`` / ``eval_gamma_bias`` in eval
      mode when given), ``alpha = sigmoid(gamma)``;
    - compressed alpha ``alpha_min + (alpha_max - alpha_min) * alpha`` when ``compress`` (by default
      in eval mode only).

    Args:
        in_channels: channel count (or feature dimension for (N, D) inputs) of each tapped feature,
            in the order the features are passed to :meth:`forward` (standard model's first).
        width: common projection width.
        depth: number of 3x3 conv + ReLU layers after the sum.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int = 64,
        depth: int = 2,
        gamma_scale: float = 2.0,
        gamma_bias: float = 0.4,
        eval_gamma_scale: float | None = None,
        eval_gamma_bias: float | None = None,
        alpha_min: float = 0.0,
        alpha_max: float = 1.0,
        train_clamp_std: float | None = 0.6,
    ) -> None:
        super().__init__()
        if len(in_channels) == 0:
            raise ValueError("MixingNetwork needs at least one input feature")
        if not 0.0 <= alpha_min <= alpha_max <= 1.0:
            raise ValueError(f"need 0 <= alpha_min <= alpha_max <= 1, got [{alpha_min}, {alpha_max}]")
        self.in_channels = [int(c) for c in in_channels]
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, kernel_size=1, bias=False), nn.BatchNorm2d(width))
            for c in self.in_channels
        )
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, kernel_size=3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.linear = nn.Linear(width, 1, bias=False)
        self.bn = nn.BatchNorm1d(1, affine=False, momentum=0.01)
        self.train_clamp_std = train_clamp_std
        # Buffers so that tuned head settings travel with the state dict.
        self.register_buffer("gamma_scale", torch.tensor(float(gamma_scale)))
        self.register_buffer("gamma_bias", torch.tensor(float(gamma_bias)))
        eval_scale = gamma_scale if eval_gamma_scale is None else eval_gamma_scale
        eval_bias = gamma_bias if eval_gamma_bias is None else eval_gamma_bias
        self.register_buffer("eval_gamma_scale", torch.tensor(float(eval_scale)))
        self.register_buffer("eval_gamma_bias", torch.tensor(float(eval_bias)))
        self.register_buffer("alpha_min", torch.tensor(float(alpha_min)))
        self.register_buffer("alpha_max", torch.tensor(float(alpha_max)))

    def score(self, features: Sequence[Tensor]) -> Tensor:
        """Raw detector score (N,) before the output head."""
        if len(features) != len(self.projections):
            raise ValueError(f"expected {len(self.projections)} features, got {len(features)}")
        maps = []
        for i, (feat, channels) in enumerate(zip(features, self.in_channels, strict=True)):
            if feat.dim() == 2:
                feat = feat[:, :, None, None]
            if feat.dim() != 4 or feat.shape[1] != channels:
                raise ValueError(
                    f"feature {i}: expected (N, {channels}, H, W) or (N, {channels}), got {tuple(feat.shape)}"
                )
            maps.append(feat)
        height = min(m.shape[2] for m in maps)
        width = min(m.shape[3] for m in maps)
        total = 0
        for proj, feat in zip(self.projections, maps, strict=True):
            if feat.shape[2:] != (height, width):
                feat = F.adaptive_avg_pool2d(feat, (height, width))
            total = total + proj(feat)
        hidden = self.body(total).mean(dim=(2, 3))
        return self.linear(hidden).squeeze(1)

    def forward(self, features: Sequence[Tensor], compress: bool | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(alpha, gamma_logit)``, both (N,).

        ``gamma_logit`` is the logit fed to the BCE detector loss; ``alpha = sigmoid(gamma_logit)``
        unless compressed to [alpha_min, alpha_max] (``compress=None`` means: iff in eval mode).
        """
        raw = self.score(features)
        if self.training and self.train_clamp_std is not None and raw.shape[0] > 1:
            with torch.no_grad():
                mean, std = raw.mean(), raw.std()
            raw = torch.clamp(raw, mean - self.train_clamp_std * std, mean + self.train_clamp_std * std)
        normed = self.bn(raw.unsqueeze(1)).squeeze(1)
        if self.training:
            gamma_logit = normed * self.gamma_scale + self.gamma_bias
        else:
            gamma_logit = normed * self.eval_gamma_scale + self.eval_gamma_bias
        alpha = torch.sigmoid(gamma_logit)
        if compress if compress is not None else not self.training:
            alpha = self.alpha_min + (self.alpha_max - self.alpha_min) * alpha
        return alpha, gamma_logit


class MixedClassifier(nn.Module):
    """Mixture of a standard model g and a robust model h in probability space (docs/mixed_classifier.md).

    ``forward(x) = log((1 - alpha(x)) softmax(scale_std * g(x)) + alpha(x) softmax(scale_rob * h(x)))``.

    Both base models are frozen: their parameters never require gradients and they stay in eval
    mode even when the mixed classifier is put in training mode (:meth:`train` is overridden).
    Input gradients still flow through them, and through alpha and the tapped features.

    Args:
        standard, robust: the base models g and h (inputs -> logits).
        alpha: a constant mixing weight in [0, 1]; when given it overrides the mixing network
            (see :meth:`set_constant_alpha`).
        mixing_network: the learned alpha(x); fed with the outputs of ``standard_layers`` (of g)
            followed by those of ``robust_layers`` (of h), names as in ``named_modules()``.
        scale_std, scale_rob: logit temperatures s_g, s_h.
        compress_alpha: passed to :meth:`MixingNetwork.forward` (None: compress iff eval mode).
            Set it to False while generating training-time attacks, as the reference does.
    """

    def __init__(
        self,
        standard: nn.Module,
        robust: nn.Module,
        alpha: float | None = None,
        mixing_network: MixingNetwork | None = None,
        standard_layers: Sequence[str] = (),
        robust_layers: Sequence[str] = (),
        scale_std: float = 1.0,
        scale_rob: float = 1.0,
        compress_alpha: bool | None = None,
    ) -> None:
        super().__init__()
        if alpha is None and mixing_network is None:
            raise ValueError("MixedClassifier needs a constant alpha or a mixing_network")
        self.standard = standard
        self.robust = robust
        self.mixing_network = mixing_network
        self.standard_layers = list(standard_layers)
        self.robust_layers = list(robust_layers)
        self.scale_std = float(scale_std)
        self.scale_rob = float(scale_rob)
        self.compress_alpha = compress_alpha
        self.alpha: float | None = None
        if mixing_network is not None:
            n_tapped = len(self.standard_layers) + len(self.robust_layers)
            if n_tapped != len(mixing_network.in_channels):
                raise ValueError(
                    f"the mixing network takes {len(mixing_network.in_channels)} features but "
                    f"{n_tapped} layers are tapped (standard_layers + robust_layers)"
                )
            # Fail early on a wrong layer name (hooks are registered per forward, see forward_with_alpha).
            FeatureTap(standard, self.standard_layers).remove()
            FeatureTap(robust, self.robust_layers).remove()
        for base in (self.standard, self.robust):
            base.requires_grad_(False)
            base.eval()
        self.set_constant_alpha(alpha)

    def set_constant_alpha(self, alpha: float | None) -> None:
        """Use a constant alpha (e.g. for a sweep); ``None`` goes back to the mixing network."""
        if alpha is None:
            if self.mixing_network is None:
                raise ValueError("cannot unset the constant alpha: there is no mixing network")
        elif not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.alpha = None if alpha is None else float(alpha)

    def train(self, mode: bool = True) -> MixedClassifier:
        """Set the mixing network's mode; the base models always stay in eval mode."""
        super().train(mode)
        self.standard.eval()
        self.robust.eval()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> MixedClassifier:
        """Like ``nn.Module.requires_grad_`` but the base models stay frozen."""
        super().requires_grad_(requires_grad)
        self.standard.requires_grad_(False)
        self.robust.requires_grad_(False)
        return self

    def forward_with_alpha(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(log_probs (N, K), alpha (N,), gamma_logit (N,))``.

        With a constant alpha, ``gamma_logit = logit(alpha)`` (-inf / +inf at alpha = 0 / 1).
        """
        if self.alpha is not None:
            logits_std, logits_rob = self.standard(x), self.robust(x)
            alpha = torch.full((x.shape[0],), self.alpha, device=logits_std.device, dtype=torch.float32)
            gamma_logit = torch.logit(alpha)
        else:
            assert self.mixing_network is not None
            # Hooks live only for this forward: a deep copy / DataParallel replica taps its own modules.
            with (
                FeatureTap(self.standard, self.standard_layers) as tap_std,
                FeatureTap(self.robust, self.robust_layers) as tap_rob,
            ):
                logits_std, logits_rob = self.standard(x), self.robust(x)
                features = tap_std.features + tap_rob.features
            alpha, gamma_logit = self.mixing_network(features, compress=self.compress_alpha)
        log_probs = mix_log_probs(logits_std, logits_rob, alpha, self.scale_std, self.scale_rob)
        return log_probs, alpha, gamma_logit

    def forward(self, x: Tensor) -> Tensor:
        """Mixture log-probabilities (N, K); ``softmax`` of the output is the mixture."""
        return self.forward_with_alpha(x)[0]
