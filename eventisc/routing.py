"""Which listeners hear an event: exact names in a dict, regexes cached per event name."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._fork import register

if TYPE_CHECKING:
    from .listeners.base import Listener

__all__ = ["Router"]

#: How many distinct event names the regex cache remembers.
CACHE_SIZE = 4096


class Router:
    """Maps a full event name to the listeners it reaches, in config order.

    Exact names are a dict lookup. Regexes (matched with ``re.match``, as in event-isc) are
    tried once per distinct event name and the result is cached, so routing costs the same
    with 10 or 1,000 listeners. Safe to call from many threads.
    """

    def __init__(self, listeners: Sequence[Listener], cache_size: int = CACHE_SIZE):
        self._exact: dict[str, list[tuple[int, Listener]]] = {}
        self._regex: list[tuple[int, Listener]] = []
        for index, listener in enumerate(listeners):
            if listener.event_name_regex is not None:
                self._regex.append((index, listener))
            else:
                self._exact.setdefault(listener.event_name or "", []).append((index, listener))
        self._cache: dict[str, tuple[Listener, ...]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def match(self, event_name: str) -> tuple[Listener, ...]:
        """Return the listeners whose name or regex matches ``event_name``, in config order."""
        found = self._cache.get(event_name)
        if found is not None:
            return found
        return self._resolve(event_name)

    def _resolve(self, event_name: str) -> tuple[Listener, ...]:
        hits = list(self._exact.get(event_name, ()))
        hits.extend(
            item
            for item in self._regex
            if item[1].event_name_regex.match(event_name)  # type: ignore[union-attr]
        )
        hits.sort(key=lambda item: item[0])
        found = tuple(listener for _, listener in hits)
        with self._lock:
            if len(self._cache) >= self._cache_size:
                # Forget the oldest half: cheap, and names that are still hot come back at once.
                for key in list(self._cache)[: self._cache_size // 2]:
                    del self._cache[key]
            self._cache[event_name] = found
        return found
