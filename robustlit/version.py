"""robustlit's version (equal to ``pyproject.toml``'s), in a leaf module: any part of the package can read it
without importing the package's ``__init__``."""

__version__ = "0.1.0"
