"""Routes and the router: which routes an event takes, and everything about each route.

A :class:`Route` is built once, when its listener is added to an app, and holds everything
about it: the listener (its filter and its ``render``), its metrics, and its wiring — the send
step chosen for it and the recorder of its outcomes (:mod:`eventisc.delivery`). The
:class:`Router` maps a full event name to its routes: exact names in a dict, regexes tried
once per distinct event name and the result cached, so routing costs the same with 10 or 1,000
listeners.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._fork import register

if TYPE_CHECKING:
    from .delivery import Wiring
    from .listeners.base import Listener
    from .metrics import ListenerMetrics
    from .notification import Notification
    from .report import Delivery
    from .settings import Plan

__all__ = ["Route", "Router"]

#: How many distinct event names the regex cache remembers.
CACHE_SIZE = 4096


class Route:
    """One listener of an app, ready to take events (see the module docstring).

    ``render(event_name, event_data)`` is the listener's, with the ordering key added for an
    ordered outbox listener; ``send(notification, start, sink)`` is the route's send step
    (:mod:`eventisc.delivery.steps`); ``matched()`` counts an event routed here.
    """

    __slots__ = ("listener", "plan", "metrics", "wiring", "render", "send", "matched")

    def __init__(self, listener: Listener, plan: Plan, metrics: ListenerMetrics, wiring: Wiring):
        self.listener = listener
        self.plan = plan
        self.metrics = metrics
        self.wiring = wiring
        self.render = _keyed(listener) if listener.ordering_key is not None else listener.render
        self.send = wiring.send
        self.matched = metrics.matched.inc

    @property
    def name(self) -> str:
        return self.listener.name

    def filtered(self, sink: list[Delivery] | None) -> bool:
        """The event did not pass the listener's filter: counted, and reported to ``sink``."""
        self.metrics.filtered.inc()
        self.wiring.recorder.skipped(None, "filtered out", sink)
        return False

    def fail(
        self,
        exc: Exception,
        rendering: bool,
        event_name: str,
        notification: Notification | None,
        start: float,
        sink: list[Delivery] | None,
    ) -> BaseException:
        """Record a failure the send step did not record itself: the filter's (``rendering``
        False), the template's, or a direct attempt's. Returns the error reported."""
        error: BaseException = exc
        if not rendering:
            failure = getattr(self.listener.filter, "failure", None)
            if failure is not None:  # the filter's own error for what its predicate raised
                error = failure(exc)
                error.__cause__ = exc
        return self.wiring.recorder.failed_early(error, event_name, notification, start, sink)

    def __repr__(self) -> str:
        return f"<Route {self.name!r}>"


def _keyed(listener: Listener) -> Callable[[str, Any], Notification]:
    """``listener.render`` that also renders the ordering key onto the notification."""
    render = listener.render
    key = listener.render_ordering_key

    def render_keyed(event_name: str, event_data: Any) -> Notification:
        notification = render(event_name, event_data)
        notification.ordering_key = key(event_name, event_data)
        return notification

    return render_keyed


class Router:
    """Maps a full event name to the routes it takes, in config order. Safe to call from many
    threads."""

    def __init__(self, routes: Sequence[Route], cache_size: int = CACHE_SIZE):
        self._exact: dict[str, list[tuple[int, Route]]] = {}
        self._regex: list[tuple[int, Route]] = []
        for index, route in enumerate(routes):
            listener = route.listener
            if listener.event_name_regex is not None:
                self._regex.append((index, route))
            else:
                self._exact.setdefault(listener.event_name or "", []).append((index, route))
        self._cache: dict[str, tuple[Route, ...]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def match(self, event_name: str) -> tuple[Route, ...]:
        """The routes whose listener's name or regex matches ``event_name``, in config order."""
        found = self._cache.get(event_name)
        if found is not None:
            return found
        return self._resolve(event_name)

    def _resolve(self, event_name: str) -> tuple[Route, ...]:
        hits = list(self._exact.get(event_name, ()))
        hits.extend(
            item
            for item in self._regex
            if item[1].listener.event_name_regex.match(event_name)  # type: ignore[union-attr]
        )
        hits.sort(key=_index)
        found = tuple(route for _, route in hits)
        with self._lock:
            if len(self._cache) >= self._cache_size:
                # Forget the oldest half: cheap, and names that are still hot come back at once.
                for key in list(self._cache)[: self._cache_size // 2]:
                    del self._cache[key]
            self._cache[event_name] = found
        return found


def _index(item: tuple[int, Any]) -> int:
    return item[0]
