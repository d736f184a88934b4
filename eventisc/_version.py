"""The version of eventisc, in a module of its own: any module may read it."""

__version__ = "0.1.0"
