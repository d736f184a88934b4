"""What a reload keeps, replaces and retires (:meth:`eventisc.App.reload`).

A reload applies the listeners and ``name_prefix`` of the config loaded again. A listener whose
definition did not change keeps its route: its connections, its queued work, its metrics and
breaker. A changed one gets a new route; the old listener, like a removed one, is *retired*:
closed after :data:`RETIRE_AFTER` seconds, so that deliveries in flight on it finish first
(a delivery still queued for it after that reconnects). Every other top-level key needs a
restart: :func:`unreloadable` names those that changed, and the app keeps its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .listeners.base import Listener

__all__ = ["RELOADABLE", "RETIRE_AFTER", "Retired", "definition", "remember", "unreloadable"]

logger = logging.getLogger(__name__)

#: The top-level keys a reload applies.
RELOADABLE = ("listeners", "name_prefix")

#: Seconds a retired listener stays open for the deliveries in flight on it.
RETIRE_AFTER = 30.0


def remember(listener: Listener, item: Any) -> None:
    """Keep the config mapping ``listener`` was built from, to tell at a reload whether its
    definition changed."""
    if isinstance(item, Mapping):
        listener.__dict__["_definition"] = dict(item)


def definition(listener: Listener) -> dict[str, Any] | None:
    """The config mapping the listener was built from (None: built in Python)."""
    return listener.__dict__.get("_definition")


def unchanged(old: Listener, new: Listener) -> bool:
    """Whether ``new`` is ``old`` again: the same object, or built from an equal mapping under
    the same name."""
    if old is new:
        return True
    found = definition(old)
    return found is not None and old.name == new.name and found == definition(new)


def unreloadable(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The top-level keys other than :data:`RELOADABLE` whose values differ."""
    keys = (set(old) | set(new)) - set(RELOADABLE)
    return sorted(key for key in keys if old.get(key) != new.get(key))


class Retired:
    """Listeners a reload replaced or removed, closed :data:`RETIRE_AFTER` seconds later (or
    when the app closes, whichever comes first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add(self, listeners: Iterable[Listener], after: float = RETIRE_AFTER) -> None:
        batch = list(listeners)
        if not batch:
            return
        with self._lock:
            self._listeners.extend(batch)
        timer = threading.Timer(after, self._close, [batch])
        timer.daemon = True
        timer.start()

    def close_all(self) -> None:
        with self._lock:
            batch, self._listeners = self._listeners, []
        _close(batch)

    def _close(self, batch: list[Listener]) -> None:
        with self._lock:
            batch = [listener for listener in batch if listener in self._listeners]
            self._listeners = [lis for lis in self._listeners if lis not in batch]
        _close(batch)


def _close(listeners: Iterable[Listener]) -> None:
    for listener in listeners:
        try:
            listener.close()
        except Exception:
            logger.exception("closing the retired listener %r failed", listener.name)
