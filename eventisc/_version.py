"""The version of eventisc (its own module: any module may read it without importing the package)."""

__version__ = "0.1.0"
