"""robustlit: a PyTorch Lightning framework for adversarial robustness research."""

from robustlit.checkpoint import CheckpointError, load_classifier, load_module

__version__ = "0.1.0"
__all__ = ["CheckpointError", "__version__", "load_classifier", "load_module"]
