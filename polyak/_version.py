"""The library version, recorded in model files and run folders."""

__version__ = "0.1.0"
