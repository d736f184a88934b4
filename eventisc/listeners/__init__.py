"""Listener kinds. Each kind's module is imported when a config first names it."""

from .base import Listener, missing_driver

__all__ = ["Listener", "missing_driver"]
