"""Kinds resolved lazily by name: registered classes, built-in modules, entry points."""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from ._fork import register
from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes by ``kind``.

    A class registers itself by declaring ``kind`` (see ``__init_subclass__`` in the base
    classes). A built-in kind's module is imported the first time a config names it, so
    importing eventisc never imports requests, celery or pika; third-party kinds come from the
    entry-point ``group``.
    """

    def __init__(self, what: str, builtins: dict[str, str], group: str):
        self.what = what
        self.builtins = builtins
        self.group = group
        self.classes: dict[str, type[T]] = {}
        self._lock = threading.RLock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.RLock()

    def register(self, kind: str, cls: type[T]) -> None:
        self.classes[kind] = cls

    def known(self) -> list[str]:
        names = set(self.builtins) | set(self.classes)
        try:
            names.update(ep.name for ep in entry_points(group=self.group))
        except Exception:  # a broken installed distribution must not hide our own kinds
            pass
        return sorted(names)

    def get(self, kind: str) -> type[T]:
        """Return the class of ``kind``; raise ConfigError saying which kinds exist."""
        cls = self.classes.get(kind)
        if cls is not None:
            return cls
        with self._lock:
            if kind in self.builtins:
                try:
                    importlib.import_module(self.builtins[kind])
                except ImportError as exc:
                    raise ConfigError(f"{self.what} kind {kind!r} cannot be used: {exc}") from exc
            elif kind not in self.classes:
                self._load_entry_point(kind)
        cls = self.classes.get(kind)
        if cls is None:
            raise ConfigError(self._unknown(kind))
        return cls

    def _load_entry_point(self, kind: str) -> None:
        for ep in entry_points(group=self.group, name=kind):
            try:
                loaded = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{self.what} kind {kind!r} (entry point {ep.value}) failed to load: {exc}"
                ) from exc
            # Loading the module registers subclasses that declare ``kind``; a class whose
            # ``kind`` differs from its entry-point name is registered under that name too.
            if isinstance(loaded, type):
                self.classes.setdefault(kind, loaded)

    def _unknown(self, kind: str) -> str:
        known = self.known()
        close = difflib.get_close_matches(kind, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        return f"unknown {self.what} kind {kind!r}{hint} Known kinds: {', '.join(known)}"
