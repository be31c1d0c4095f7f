"""Interoperability: evaluate models trained elsewhere, export and load without pickle (docs/interop.md)."""

from robustlit.interop.architecture import build_architecture
from robustlit.interop.exported import ExportFormatError, is_export, load_export, read_card, write_export
from robustlit.interop.robustbench_zoo import RobustBenchUnavailableError, load_robustbench_model
from robustlit.interop.source import InputNormalization, ModelSource, build_model
from robustlit.interop.weights import read_state_dict

__all__ = [
    "ExportFormatError",
    "InputNormalization",
    "ModelSource",
    "RobustBenchUnavailableError",
    "build_architecture",
    "build_model",
    "is_export",
    "load_export",
    "load_robustbench_model",
    "read_card",
    "read_state_dict",
    "write_export",
]
