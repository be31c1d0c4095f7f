"""Gaussian noise augmentation for randomized smoothing: constant sigma (Cohen et al. 2019)
or an input-dependent sigma(x) (Súkeník et al. 2022; docs/smoothing.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset
from torchmetrics.classification import MulticlassAccuracy

from robustlit.certify.sigma import ConstantSigma, KNNSigma, SigmaFunction
from robustlit.certify.smoothing import SmoothedClassifier
from robustlit.methods.base import RobustClassifier
from robustlit.utils.config_types import FinitePositiveFloat
from robustlit.utils.finite import check_finite_logits

__all__ = ["GaussianSmoothing", "TrainingSetKNNSigma"]


class TrainingSetKNNSigma(KNNSigma):
    """:class:`KNNSigma` whose reference points are the training images, filled in at ``fit`` time.

    sigma(x) = sigma_base exp(rate (d_k(x) - normaliser)), d_k = mean l2 distance to the k nearest
    training images (docs/smoothing.md). Config-friendly: no tensor argument. :class:`GaussianSmoothing`
    calls :meth:`set_reference` with the DataModule's training set in ``setup("fit")``; the reference is
    a buffer, so it is saved in every checkpoint and a loaded model certifies with the very same sigma(x)
    (loading resizes the buffer to the stored shape). Checkpoint size grows by ``4 * M * D`` bytes
    (M reference points of D values): cap M with ``max_reference`` for large training sets (a fixed,
    seeded subset; any fixed reference set keeps sigma r-semi-elastic, so certificates stay sound).

    Args:
        sigma_base: sigma_b > 0.
        rate: semi-elasticity r >= 0 (0.01 in the paper for CIFAR-10 / MNIST).
        k: number of neighbours (20 in the paper).
        normaliser: m (5 for CIFAR-10, 1.5 for MNIST in the paper).
        max_reference: keep at most this many training images (seeded random subset); None keeps all.
        reference_seed: seed of that subset and of the training-set transforms while it is read.
    """

    def __init__(
        self,
        sigma_base: PositiveFloat,
        rate: float,
        k: PositiveInt = 20,
        normaliser: float = 0.0,
        max_reference: PositiveInt | None = None,
        reference_seed: int = 0,
        query_chunk: PositiveInt = 256,
        reference_chunk: PositiveInt = 4096,
    ) -> None:
        # A placeholder of k zero-width rows until set_reference (or a checkpoint) provides the data.
        super().__init__(sigma_base, rate, torch.zeros(k, 0), k, normaliser, query_chunk, reference_chunk)
        if max_reference is not None and max_reference < k:
            raise ValueError(f"max_reference must be >= k={k} (the number of neighbours); got {max_reference}")
        self.max_reference = max_reference
        self.reference_seed = reference_seed

    @property
    def has_reference(self) -> bool:
        """Whether the reference set has been filled in (by ``fit`` or by loading a checkpoint)."""
        return self.reference.shape[1] > 0

    def set_reference(self, reference: Tensor) -> None:
        """Use ``reference`` (M, ...) as the reference points (a seeded subset if M > ``max_reference``)."""
        flat = reference.detach().flatten(1).float()
        if flat.shape[0] < self.k:
            raise ValueError(f"the reference set has {flat.shape[0]} points, fewer than k={self.k}")
        if self.max_reference is not None and flat.shape[0] > self.max_reference:
            generator = torch.Generator().manual_seed(self.reference_seed)
            keep = torch.randperm(flat.shape[0], generator=generator)[: self.max_reference].sort().values
            flat = flat[keep.to(flat.device)]
        self.reference = flat.to(self.reference.device).clone()

    def set_reference_from_dataset(self, dataset: Dataset) -> None:
        """Read every input of ``dataset`` (items ``(x, y, ...)``) once, with seeded transforms, so that
        every DDP rank builds the same reference set even when the training set is augmented."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.reference_seed)
            inputs = [dataset[i][0] for i in range(len(dataset))]
        self.set_reference(torch.stack([torch.as_tensor(x) for x in inputs]))

    def mean_knn_distance(self, x: Tensor) -> Tensor:
        if not self.has_reference:
            raise RuntimeError(
                "TrainingSetKNNSigma has no reference set yet: it is filled from the training data when "
                "GaussianSmoothing is fitted, and restored from its checkpoint. Certify a trained checkpoint "
                "(--ckpt_path ...), or call set_reference(train_images) first."
            )
        return super().mean_knn_distance(x)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        stored = state_dict.get(prefix + "reference")
        if stored is not None and stored.shape != self.reference.shape:
            self.reference = torch.empty_like(stored, device=self.reference.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_reference={self.max_reference}"


class GaussianSmoothing(RobustClassifier):
    """Train the base classifier f on ``x + sigma(x) * eps``, eps ~ N(0, I) (Cohen et al. 2019; docs/smoothing.md).

    Fresh noise every step, added in [0, 1] pixel space *before* the model's Normalize layer and not
    clipped, with plain cross-entropy: the training of Cohen et al. (constant sigma) and Suekenik et al.
    (input-dependent sigma(x)). The smoothed classifier g is :meth:`smoothed_classifier`; certify it with
    the :class:`robustlit.callbacks.certification.Certification` callback, which uses this ``sigma_fn``.

    Evaluation metrics (validation and test): ``val/acc``, ``val/ece``, ``val/nll`` keep their meaning in
    every robustlit method, the base classifier f on *clean* inputs. ``val/noisy_acc`` is f's accuracy
    on one draw of ``x + sigma(x) eps`` per example (noise seeded by batch index, so epochs compare).
    Neither is the smoothed classifier's accuracy: that is ``certified_acc/r_0`` of the callback.

    In user code, on any [0, 1] input x (no batch dimension)::

        g = robustlit.checkpoint.load_module("runs/digits-smoothing/version_0/checkpoints/last.ckpt")
        g = g.smoothed_classifier()
        g.predict(x, n=1000, alpha=0.001, batch_size=1000)  # a class, or -1 (abstain)
        g.certify(x, n0=100, n=10_000, alpha=0.001, batch_size=1000)  # .prediction, .radius (pixels)

    Args:
        sigma: the noise level: a float (``ConstantSigma``) or a :class:`SigmaFunction`, e.g.
            ``{class_path: robustlit.certify.sigma.ConstantSigma, init_args: {sigma: 0.25}}`` or
            :class:`TrainingSetKNNSigma` (its reference set is built from the training data at fit).
        train_sigma_scale: multiply sigma(x) by this during training only (Suekenik et al. train with a
            slightly larger sigma_b, e.g. 0.263 for a certified 0.25: scale 1.052). Certification and
            ``val/noisy_acc`` use sigma(x) itself.
        noise_seed: seed of the validation/test noise behind ``noisy_acc``.
        **kwargs: see :class:`RobustClassifier` (backbone, optimizer, lr_scheduler, ...).
    """

    def __init__(
        self,
        sigma: SigmaFunction | FinitePositiveFloat = 0.25,
        train_sigma_scale: FinitePositiveFloat = 1.0,
        noise_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(sigma, bool) or not isinstance(sigma, SigmaFunction | float | int):
            raise ValueError(f"sigma must be a positive float or a SigmaFunction; got {sigma!r}")
        if not isinstance(sigma, SigmaFunction) and not 0 < sigma < float("inf"):  # also refuses NaN
            raise ValueError(f"sigma must be positive and finite (pixel units, e.g. 0.25); got {sigma}")
        if not 0 < train_sigma_scale < float("inf"):
            raise ValueError(f"train_sigma_scale must be positive and finite; got {train_sigma_scale}")
        self.sigma_fn = sigma if isinstance(sigma, SigmaFunction) else ConstantSigma(float(sigma))
        self.train_sigma_scale = float(train_sigma_scale)
        self.noise_seed = noise_seed
        self.val_noisy_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.test_noisy_acc = MulticlassAccuracy(self.num_classes, average="micro")

    # ---- noise -------------------------------------------------------------------------------------
    def sigma_of(self, x: Tensor) -> Tensor:
        """sigma(x) (N,), evaluated without gradients (sigma is a fixed function of the input)."""
        with torch.no_grad():
            sigma = self.sigma_fn(x).to(dtype=x.dtype, device=x.device)
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma function must return shape ({x.shape[0]},); got {tuple(sigma.shape)}")
        return sigma

    def add_noise(self, x: Tensor, scale: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``x + scale * sigma(x) * eps`` with eps ~ N(0, I) in pixel space, not clipped."""
        sigma = scale * self.sigma_of(x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + sigma.view(-1, *([1] * (x.dim() - 1))) * noise

    # ---- training ----------------------------------------------------------------------------------
    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of f on ``x + train_sigma_scale * sigma(x) * eps`` (fresh eps every call)."""
        return F.cross_entropy(self(self.add_noise(x, self.train_sigma_scale)), y, reduction="none")

    def setup(self, stage: str) -> None:
        """Fill a :class:`TrainingSetKNNSigma`'s reference set from the DataModule's training data."""
        if stage != "fit" or not isinstance(self.sigma_fn, TrainingSetKNNSigma) or self.sigma_fn.has_reference:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        dataset = getattr(datamodule, "train_dataset", None)
        if dataset is None:
            raise RuntimeError(
                "TrainingSetKNNSigma builds its reference set from the DataModule's train_dataset, but the "
                "trainer has no DataModule with one. Fit with a DataModule, or call "
                "model.sigma_fn.set_reference(train_images) before trainer.fit."
            )
        self.sigma_fn.set_reference_from_dataset(dataset)

    # ---- evaluation --------------------------------------------------------------------------------
    def _noisy_accuracy(self, batch: tuple[Tensor, Tensor], batch_idx: int, metric: MulticlassAccuracy) -> None:
        x, y = batch[0], batch[1]
        generator = torch.Generator(device=x.device).manual_seed(self.noise_seed + 1_000_003 * batch_idx)
        with torch.no_grad():
            logits = self(self.add_noise(x, generator=generator))
        check_finite_logits(logits, f"{type(self).__name__} noisy accuracy at batch {batch_idx}")
        metric.update(logits, y)
        name = "val/noisy_acc" if metric is self.val_noisy_acc else "test/noisy_acc"
        self.log(name, metric, on_step=False, on_epoch=True, batch_size=len(y))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._noisy_accuracy(batch, batch_idx, self.val_noisy_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._noisy_accuracy(batch, batch_idx, self.test_noisy_acc)

    # ---- the smoothed classifier -------------------------------------------------------------------
    def smoothed_classifier(self) -> SmoothedClassifier:
        """g(x) = argmax_c P[f(x + sigma(x) eps) = c], with Cohen et al.'s ``predict`` and ``certify``
        (input-dependent radius when sigma is not constant); inputs must lie in ``bounds``."""
        return SmoothedClassifier(self.classifier, self.sigma_fn, input_bounds=self.bounds)
