"""The ``python`` kind's listener: a function called for each event it hears, with the same
routing, filters, retries, background delivery, metrics, capture and dry-run as every kind.

:func:`declare` keeps the function listeners ``@eventisc.listener`` declares for the default
app: every default app built afterwards gets a fresh listener for each of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import ConfigError
from ...notification import Notification
from ..base import FilterLike, Listener
from .errors import translate_error
from .options import PYTHON_SCHEMA, callable_name, load_callable

__all__ = [
    "PythonListener",
    "declare",
    "declared_listeners",
    "forget_declared",
    "function_listener",
]

_NO_DATA = object()


class PythonListener(Listener):
    """Call ``callable(event_name, event_data)`` for each event it hears, or
    ``callable(event_name, payload)`` with ``data`` (the payload rendered from that template).

    The function runs in the thread that delivers: the caller's in sync delivery, a worker
    thread in background delivery, a relay in outbox delivery. An exception it raises is a
    failed attempt: :class:`~eventisc.errors.DeliveryError` naming the function, the
    exception's type and text (``ConnectError`` for a ``ConnectionError``,
    ``DeliveryTimeout`` for a ``TimeoutError``; an eventisc error it raises passes as it is),
    retried as the listener's retry policy says. Returning ``False`` declines the event
    (skipped, not counted); anything else means delivered.
    """

    kind = "python"
    schema = PYTHON_SCHEMA

    def __init__(
        self,
        event_name: Any = None,
        filter: FilterLike = None,
        *,
        callable: Callable[..., Any] | str | None = None,
        data: Any = _NO_DATA,
        **common: Any,
    ):
        super().__init__(event_name, filter, **common)
        if callable is None:
            raise ConfigError("a python listener needs a `callable`", "callable")
        self.function = load_callable(callable, "callable")
        #: The function's name as messages show it (``package.module:function``).
        self.function_name = callable if isinstance(callable, str) else callable_name(callable)
        self._data = None if data is _NO_DATA else self.template(data, "data")

    def render(self, event_name: str, event_data: Any) -> Notification:
        """The call for one event: the event data, or the ``data`` template rendered. Pure."""
        if self._data is None:
            payload = {"event_data": event_data}
        else:
            context = {"event_name": event_name, "event_data": event_data}
            payload = {"data": self._data.render(context)}
        return Notification(self.name, self.kind, event_name, payload)

    def deliver(self, notification: Notification) -> Any:
        """Call the function; ``False`` when it returned False (declined), else
        ``"called <function>"``."""
        payload = notification.payload
        argument = payload["data"] if "data" in payload else payload.get("event_data")
        try:
            result = self.function(notification.event_name, argument)
        except Exception as exc:
            raise translate_error(exc, self.function_name) from exc
        return False if result is False else f"called {self.function_name}"

    def describe(self) -> str:
        """``call package.module:function``."""
        return f"call {self.function_name}"


def function_listener(
    func: Callable[..., Any], event_name: Any = None, options: Mapping[str, Any] | None = None
) -> PythonListener:
    """A :class:`PythonListener` calling ``func`` (the decorators' listener); ``options`` are
    the listener's keyword arguments (``event_name_regex``, ``filter``, ``delivery``, ...)."""
    return PythonListener(event_name, callable=func, **dict(options or {}))


#: What ``@eventisc.listener`` declared: (function, event name, options), in order.
_declared: list[tuple[Callable[..., Any], Any, dict[str, Any]]] = []
_declared_lock = threading.Lock()


def declare(
    func: Callable[..., Any], event_name: Any = None, options: Mapping[str, Any] | None = None
) -> PythonListener:
    """Remember ``func`` as a function listener of every default app built from now on, and
    return its listener (checked now: a ConfigError for bad options, nothing remembered)."""
    listener = function_listener(func, event_name, options)
    with _declared_lock:
        _declared.append((func, event_name, dict(options or {})))
    return listener


def declared_listeners() -> list[PythonListener]:
    """A fresh listener for each function declared with :func:`declare`, in order."""
    with _declared_lock:
        declared = list(_declared)
    return [function_listener(func, name, options) for func, name, options in declared]


def forget_declared() -> None:
    """Forget every declared function (tests)."""
    with _declared_lock:
        _declared.clear()
