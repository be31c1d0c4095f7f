"""The shared LightningModule of every robustlit method."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from robustlit.attacks.ball import Bounds
from robustlit.models.normalize import Normalize
from robustlit.utils.batch_checks import batch_is_sound, check_evaluation_batch, dataset_indices
from robustlit.utils.finite import check_finite_logits
from robustlit.utils.integrity import (
    CHECKSUM_KEY,
    STATE_CHECKSUMS_KEY,
    state_checksums,
    verify_checkpoint,
    weights_checksum,
)


def plain_types(value: Any) -> Any:
    """Recursively turn int/float subclasses (jsonargparse's PositiveInt, ClosedUnitInterval, ...) into
    builtins, so checkpoints load with ``torch.load(weights_only=True)`` (PyTorch's safe default)."""
    if isinstance(value, dict):
        return type(value)((k, plain_types(v)) for k, v in value.items())
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(plain_types(v) for v in value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _default_optimizer(params) -> torch.optim.Optimizer:  # noqa: ANN001 - signature fixed by Lightning
    return torch.optim.Adam(params, lr=1e-3)


class RobustClassifier(pl.LightningModule):
    """Base module: ``classifier = Normalize(mean, std) -> backbone``, mapping [0, 1] inputs to logits.

    A method overrides :meth:`training_loss` (or :meth:`per_example_loss`); adversarial objectives
    define per-example terms and weights instead (see :class:`~robustlit.methods.adversarial.AdversarialTraining`).
    Evaluation attacks and certification are callbacks that read :attr:`classifier`, :attr:`num_classes`
    and :attr:`bounds`.
    Validation/test log clean accuracy, ECE (15 bins) and NLL.

    ``ready_without_checkpoint`` (class attribute, default ``False``): whether the module's weights are
    complete when it is built. ``robustlit validate/test/predict`` of a module without it refuses to run
    without ``--ckpt_path`` (it would evaluate random weights) unless ``--allow_untrained true``.

    Args:
        backbone: any ``nn.Module`` mapping normalised inputs to ``num_classes`` logits.
        num_classes: number of classes (linked from the DataModule by the CLI).
        mean, std: per-channel normalisation statistics (linked from the DataModule by the CLI).
        bounds: input domain ([0, 1] for images, ``None`` for unbounded feature vectors).
        optimizer: optimizer factory, e.g. ``torch.optim.SGD`` with init_args in the config.
        lr_scheduler: optional LR scheduler factory (stepped once per epoch).
        channels_last: store the classifier's weights (and training batches) in channels-last memory
            format, faster for convolutions under bf16 on recent GPUs (docs/speed.md).
        compile: compile the classifier in place with ``torch.compile`` (``nn.Module.compile``: the
            state-dict keys do not change), so training, training attacks, evaluation attacks and
            certification all call the compiled forward; the attack loops stay in Python around it.
        compile_kwargs: keyword arguments of ``torch.compile`` (e.g. ``{mode: max-autotune}``,
            ``{backend: aot_eager}``).
    """

    #: the weights are complete when the module is built (no checkpoint needed to evaluate it)
    ready_without_checkpoint: ClassVar[bool] = False

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        bounds: Bounds = (0.0, 1.0),
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = False,
        compile: bool = False,
        compile_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # the backbone is kept in the hyperparameters on purpose (its class path and init args rebuild it:
            # robustlit.load_module, robustlit.export); Lightning's advice to drop it would break both
            warnings.filterwarnings("ignore", message=r"Attribute 'backbone' is an instance of `nn.Module`")
            self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.num_classes = num_classes
        self.bounds = tuple(bounds) if bounds is not None else None
        self.classifier = nn.Sequential(Normalize(mean, std), backbone)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.val_metrics = self._metrics("val/")
        self.test_metrics = self._metrics("test/")
        self.channels_last, self.compile_classifier = bool(channels_last), bool(compile)
        self.compile_kwargs = dict(compile_kwargs or {})
        self._speed_applied = False

    def _metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(self.num_classes, average="micro"),
                "ece": MulticlassCalibrationError(self.num_classes, n_bins=15, norm="l1"),
                "nll": MeanMetric(),
            },
            prefix=prefix,
        )

    @property
    def backbone(self) -> nn.Module:
        return self.classifier[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x)

    # ---- speed options (docs/speed.md) ----------------------------------------------------------------
    def configure_model(self) -> None:
        """Apply ``channels_last`` and ``compile`` once (Lightning calls this before fit/validate/test)."""
        if self._speed_applied:
            return
        self._speed_applied = True
        if self.channels_last:
            self.classifier.to(memory_format=torch.channels_last)
        if self.compile_classifier:
            self.classifier.compile(**self.compile_kwargs)

    def memory_format(self, x: Tensor) -> Tensor:
        """``x`` in the classifier's memory format (channels-last for 4-d image batches when enabled)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # ---- training ---------------------------------------------------------------------------------
    def per_example_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-example training loss (N,). The default is plain cross-entropy (ERM)."""
        logits = self(x)
        self.log_training_accuracy("clean", logits, y)
        return F.cross_entropy(logits, y, reduction="none")

    def log_training_accuracy(self, name: str, logits: Tensor, y: Tensor) -> None:
        """Log ``train/acc/<name>``, the accuracy of training logits already computed for the loss (no extra
        forward pass), averaged over the epoch and shown in the progress line."""
        if self._trainer is None or not self.training:
            return
        accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
        self.log(f"train/acc/{name}", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Scalar loss minimised by the optimizer; the mean of :meth:`per_example_loss` by default."""
        return self.per_example_loss(x, y).mean()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.checked_training_loss(self.training_loss(self.memory_format(x), y), len(y))

    def checked_training_loss(self, loss: Tensor, batch_size: int) -> Tensor:
        """``loss`` logged as ``train/loss``; a NaN or infinite loss stops training, saying what to do (faults.md)."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}. "
                "Lower the learning rate (or add gradient clipping: --trainer.gradient_clip_val 1.0) and resume "
                "from the last good checkpoint: rerun the same command with --ckpt_path <run dir>/checkpoints/"
                "last.ckpt --model.init_args.optimizer.init_args.lr <lower>. On resume the configured optimizer "
                "and scheduler settings replace the stored ones (docs/faults.md)."
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        return loss

    # ---- every batch is data before it is a model input (docs/faults.md) --------------------------------
    def _check_batch(self, batch: Any, batch_idx: int, stage: str, loader: object) -> None:
        """Refuse a batch with a NaN or infinite input or a label outside 0..num_classes-1 before any model call,
        naming the dataset indices; otherwise a NaN image is reported as the model's NaN logits and a wrong label
        as a bare ``IndexError`` of the loss."""
        if not isinstance(batch, list | tuple) or not isinstance(batch[0], Tensor):
            return
        x = batch[0]
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
        if batch_is_sound(x, y, self.num_classes):
            return
        integer = y is not None and not y.is_floating_point() and y.dim() == 1
        labels = y if integer else torch.zeros(len(x), dtype=torch.long, device=x.device)
        indices = dataset_indices(loader, batch_idx, len(x))
        where = f"{type(self).__name__}: {stage} batch {batch_idx}"
        check_evaluation_batch(x, labels, indices, None, self.num_classes, where)

    def _loader(self, kind: str, dataloader_idx: int = 0) -> object:
        trainer = self._trainer
        loaders = getattr(trainer, kind, None) if trainer is not None else None
        return loaders[dataloader_idx] if isinstance(loaders, list | tuple) else loaders

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._check_batch(batch, batch_idx, "training", self._loader("train_dataloader"))

    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(batch, batch_idx, "validation", self._loader("val_dataloaders", dataloader_idx))

    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(batch, batch_idx, "test", self._loader("test_dataloaders", dataloader_idx))

    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(batch, batch_idx, "predict", self._loader("predict_dataloaders", dataloader_idx))

    # ---- evaluation --------------------------------------------------------------------------------
    def _evaluate(self, batch: tuple[Tensor, Tensor], metrics: MetricCollection) -> None:
        x, y = batch
        logits = self(x)
        batch_index = getattr(self, "_batch_index", "?")
        check_finite_logits(logits, f"{type(self).__name__} at {self._stage_name()} batch {batch_index}")
        metrics["acc"].update(logits, y)
        metrics["ece"].update(logits.softmax(dim=1), y)
        metrics["nll"].update(F.cross_entropy(logits, y, reduction="none"))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=False, batch_size=len(y))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._batch_index = batch_idx
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._batch_index = batch_idx
        self._evaluate(batch, self.test_metrics)

    def _stage_name(self) -> str:
        trainer = self._trainer
        return "test" if trainer is not None and trainer.testing else "validation"

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        x = batch[0]
        logits = self(x)
        check_finite_logits(logits, f"{type(self).__name__} at predict batch {batch_idx}")
        probs = logits.softmax(dim=1)
        return {"prediction": probs.argmax(dim=1), "probabilities": probs}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # runs after every other part was written (hyperparameters, callback and datamodule state)
        for key in list(checkpoint):
            if key != "state_dict":
                checkpoint[key] = plain_types(checkpoint[key])
        checkpoint["robustlit_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint[CHECKSUM_KEY] = weights_checksum(checkpoint["state_dict"])
        checkpoint[STATE_CHECKSUMS_KEY] = state_checksums(checkpoint)  # optimizer, schedulers, loops, callbacks

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse corrupt or non-finite weights before they are loaded (``fit/validate/test --ckpt_path``);
        :func:`robustlit.load_classifier` verifies them when it reads the file."""
        trainer = self._trainer
        if trainer is not None:
            verify_checkpoint(checkpoint, getattr(trainer, "ckpt_path", None) or "the checkpoint")

    # ---- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several return types
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(trainable)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
