"""Test helpers for services that use eventisc: see which events fired, send nothing.

    import eventisc.testing

    with eventisc.testing.capture() as events:
        signup("ann@example.com")
    events.assert_triggered("user_created", email="ann@example.com")

Inside the block the app filters and renders as usual, then records what each listener would
have sent instead of delivering it: nothing is contacted, not even to connect, and nothing is
queued in background mode. Template and filter errors are still logged (or raised as a
:class:`~eventisc.TriggerError` with ``raise_errors``), exactly as in a normal trigger.
"""

from __future__ import annotations

import difflib
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, overload

from ._fork import on_fork
from .app import Interceptor
from .notification import Notification

if TYPE_CHECKING:
    from .app import App
    from .listeners.base import Listener

__all__ = ["CapturedEvent", "CapturedEvents", "capture"]

#: Longest ``repr`` of event data shown in an assertion message.
_REPR_LIMIT = 160
#: Most events listed in an assertion message.
_LIST_LIMIT = 30


class CapturedEvent:
    """One triggered event: its full ``name``, its ``data`` and the rendered ``notifications``.

    ``short_name`` is the name without the app's ``name_prefix`` (what was passed to
    ``trigger``). ``data`` is the object that was passed, not a copy. ``notifications`` holds
    one :class:`~eventisc.Notification` per listener that passed its filter and rendered, in
    listener order; a listener whose template failed has none.
    """

    __slots__ = ("name", "short_name", "data", "notifications")

    def __init__(self, name: str, short_name: str, data: Any) -> None:
        self.name = name
        self.short_name = short_name
        self.data = data
        self.notifications: list[Notification] = []

    @property
    def listeners(self) -> list[str]:
        """Names of the listeners that would have been notified."""
        return [n.listener for n in self.notifications]

    def __repr__(self) -> str:
        return f"<CapturedEvent {self.name!r} {_short_repr(self.data)} -> {self.listeners}>"


class CapturedEvents:
    """What was triggered on one app during a :func:`capture` block, in order.

    A sequence of :class:`CapturedEvent` (``len``, iteration and indexing give a snapshot).
    Thread-safe: events triggered from other threads are recorded too.
    """

    def __init__(self, app: App, *, require_listener: bool = True) -> None:
        #: The app being captured.
        self.app = app
        #: Whether :meth:`assert_triggered` fails for an event that no listener of the app
        #: hears (set it to False to check only that your code triggered it).
        self.require_listener = require_listener
        self._events: list[CapturedEvent] = []
        self._lock = threading.Lock()
        # Per thread, the events this thread triggered last, to attach each rendered
        # notification to its own event when several threads trigger at once.
        self._local = threading.local()

    # -- hooks (called by the App) -------------------------------------------------------------

    def _observe(self, name: str, data: Any) -> None:
        prefix = self.app.name_prefix
        short = name[len(prefix) :] if prefix and name.startswith(prefix) else name
        event = CapturedEvent(name, short, data)
        with self._lock:
            self._events.append(event)
        self._recent().append(event)

    def _capture(self, listener: Listener, notification: Notification) -> None:
        recent = self._recent()
        # The latest event of this thread, unless a listener triggered another event
        # while rendering: then look further back for the one with this name.
        event = next((e for e in reversed(recent) if e.name == notification.event_name), None)
        with self._lock:
            if event is None:  # the capture began in the middle of this trigger
                event = CapturedEvent(notification.event_name, notification.event_name, None)
                self._events.append(event)
            event.notifications.append(notification)

    def _recent(self) -> deque[CapturedEvent]:
        recent: deque[CapturedEvent] | None = getattr(self._local, "recent", None)
        if recent is None:
            recent = self._local.recent = deque(maxlen=16)
        return recent

    # -- reading -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Full event names (prefix included), in the order they were triggered."""
        return [e.name for e in self]

    @property
    def notifications(self) -> list[Notification]:
        """Every rendered notification, in order."""
        return [n for e in self for n in e.notifications]

    def for_listener(self, name: str) -> list[Notification]:
        """The notifications the listener called ``name`` would have sent, in order.

        Raises ValueError when the app has no such listener (a typo would otherwise pass as
        "nothing sent").
        """
        known = [listener.name for listener in self.app.listeners]
        if name not in known:
            raise ValueError(
                f"the app has no listener named {name!r}{_did_you_mean(name, known)}; "
                f"its listeners: {', '.join(known) or 'none'}"
            )
        return [n for n in self.notifications if n.listener == name]

    def find(self, name: str, /, **data: Any) -> list[CapturedEvent]:
        """The events called ``name`` whose data contains ``data`` (see
        :meth:`assert_triggered` for how names and data match)."""
        return [e for e in self if self._name_matches(e, name) and _contains(e.data, data)]

    def assert_triggered(self, name: str, /, **data: Any) -> CapturedEvent:
        """Check that an event called ``name`` was triggered with data containing ``data``.

        ``name`` is the full name (``myapp.user_created``) or the name given to ``trigger``,
        without the app's ``name_prefix`` (``user_created``). Each keyword must be a key of the
        event data, a mapping, with an equal value (``==``: ``unittest.mock.ANY`` matches
        anything). Returns the first matching event; raises AssertionError listing what was
        triggered otherwise.

        With :attr:`require_listener` (the default), the event must also be one that a
        listener of the app hears (its name matches, whatever the filter then decides): an
        event that no listener hears fails, naming the app's listeners, since it would notify
        no one (a listener's typo, or the app built without the config).
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        found = self.find(name, **data)
        if not found:
            raise AssertionError(self._missing_message(name, data))
        if not self.require_listener:
            return found[0]
        heard = [e for e in found if any(lis.matches(e.name) for lis in self.app.listeners)]
        if not heard:
            raise AssertionError(self._unheard_message(name, found[0]))
        return heard[0]

    def assert_not_triggered(self, name: str, /, **data: Any) -> None:
        """Check that no event called ``name`` (with data containing ``data``, if given) was
        triggered; raises AssertionError listing the ones that were."""
        __tracebackhide__ = True
        found = self.find(name, **data)
        if found:
            times = "once" if len(found) == 1 else f"{len(found)} times"
            lines = [f"expected no event {_describe(name, data)}; it was triggered {times}:"]
            lines += [f"  {_line(e)}" for e in found]
            raise AssertionError("\n".join(lines))

    def clear(self) -> None:
        """Forget what was captured so far (the capture goes on)."""
        with self._lock:
            self._events.clear()

    def _name_matches(self, event: CapturedEvent, name: str) -> bool:
        return name in (event.name, event.short_name)

    def _unheard_message(self, name: str, event: CapturedEvent) -> str:
        listeners = self.app.listeners
        heard = "; ".join(f"{lis.name} ({_hears(lis)})" for lis in listeners) or "none"
        lines = [f"{name!r} was triggered but no listener hears it; the app's listeners: {heard}"]
        config = self.app.config_source
        if not listeners:
            lines.append(
                f"the app was built from {config}"
                if config
                else "the app was built without a "
                "config: was EVENTISC_CONFIG set before the app was built?"
            )
        else:
            names = [lis.event_name for lis in listeners if lis.event_name is not None]
            close = _did_you_mean(event.name, names)
            lines.append(
                f"listeners match the full name, {event.name!r}{close}; the app's config: "
                f"{config or 'none (built from Python)'}"
            )
        lines.append(
            "to check only that it was triggered, set require_listener = False on the events"
        )
        return "\n".join(lines)

    def _missing_message(self, name: str, data: Mapping[str, Any]) -> str:
        events = list(self)
        head = f"expected event {_describe(name, data)}"
        if not events:
            return f"{head}, but no event was triggered on {self.app!r}"
        lines = [f"{head}; triggered: {_count(len(events))}"]
        for index, event in enumerate(events[:_LIST_LIMIT]):
            line = f"  [{index}] {_line(event)}"
            if data and self._name_matches(event, name):
                line += f"\n      {_mismatch(event.data, data)}"
            lines.append(line)
        if len(events) > _LIST_LIMIT:
            lines.append(f"  ... and {len(events) - _LIST_LIMIT} more (events.names() has all)")
        names = sorted({e.name for e in events} | {e.short_name for e in events})
        if not any(self._name_matches(e, name) for e in events):
            lines.append(f"no event is called {name!r}{_did_you_mean(name, names)}")
        return "\n".join(lines)

    # -- sequence ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[CapturedEvent]:
        with self._lock:
            snapshot = list(self._events)
        return iter(snapshot)

    @overload
    def __getitem__(self, index: int) -> CapturedEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[CapturedEvent]: ...
    def __getitem__(self, index: int | slice) -> CapturedEvent | list[CapturedEvent]:
        with self._lock:
            return self._events[index]

    def __repr__(self) -> str:
        return f"<CapturedEvents {self.names()!r}>"


class _Hooks(Interceptor):
    """What one app is intercepted by while captures of it are active.

    Every active capture sees every event (an outer capture also records what happens inside
    a nested one). An interceptor the app had before (someone else's) sees them too, and is put
    back when the last capture ends.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.previous: Interceptor | None = None
        self.captures: tuple[CapturedEvents, ...] = ()

    def observe(self, name: str, data: Any) -> None:
        for events in self.captures:
            events._observe(name, data)
        if self.previous is not None:
            self.previous.observe(name, data)

    def capture(self, listener: Listener, notification: Notification) -> None:
        for events in self.captures:
            events._capture(listener, notification)
        if self.previous is not None:
            self.previous.capture(listener, notification)


_hooks: weakref.WeakKeyDictionary[App, _Hooks] = weakref.WeakKeyDictionary()
_hooks_lock = threading.Lock()


@on_fork
def _new_hooks_lock() -> None:
    global _hooks_lock
    _hooks_lock = threading.Lock()


@contextmanager
def capture(app: App | None = None, *, require_listener: bool = True) -> Iterator[CapturedEvents]:
    """Record what ``app`` triggers inside the block instead of delivering it.

    ``app`` defaults to the default app, ``eventisc.get_current_app()`` (built from
    ``EVENTISC_CONFIG`` if needed) taken when the block starts: an app that becomes the
    default later (``init_default_app``) is not captured. Captures nest, several apps can be
    captured at once, and ``trigger`` may be called from any thread. Each captured listener
    counts as notified; ``dispatch`` reports it ``skipped`` with detail ``captured``.
    ``require_listener``: see :attr:`CapturedEvents.require_listener`.
    """
    if app is None:
        from . import get_current_app

        app = get_current_app()
    events = CapturedEvents(app, require_listener=require_listener)
    with _hooks_lock:
        hooks = _hooks.get(app)
        if hooks is None:
            hooks = _hooks[app] = _Hooks(app)
            hooks.previous = app.intercept(hooks)
        hooks.captures += (events,)
    try:
        yield events
    finally:
        with _hooks_lock:
            hooks.captures = tuple(c for c in hooks.captures if c is not events)
            if not hooks.captures:
                del _hooks[app]
                app.intercept(hooks.previous)


# -- messages ------------------------------------------------------------------------------------


def _contains(event_data: Any, data: Mapping[str, Any]) -> bool:
    if not data:
        return True
    if not isinstance(event_data, Mapping):
        return False
    return all(key in event_data and event_data[key] == value for key, value in data.items())


def _mismatch(event_data: Any, data: Mapping[str, Any]) -> str:
    if not isinstance(event_data, Mapping):
        return f"its data is a {type(event_data).__name__}, not a mapping"
    problems = []
    for key, value in data.items():
        if key not in event_data:
            problems.append(f"{key!r} is missing")
        elif event_data[key] != value:
            got = _short_repr(event_data[key])
            problems.append(f"{key!r}: expected {_short_repr(value)}, got {got}")
    return "; ".join(problems)


def _describe(name: str, data: Mapping[str, Any]) -> str:
    return f"{name!r} with data containing {_short_repr(dict(data))}" if data else repr(name)


def _line(event: CapturedEvent) -> str:
    notified = f" (notified: {', '.join(event.listeners)})" if event.notifications else ""
    return f"{event.name} {_short_repr(event.data)}{notified}"


def _count(n: int) -> str:
    return f"{n} event{'' if n == 1 else 's'}"


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the assertion
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _hears(listener: Listener) -> str:
    if listener.event_name_regex is not None:
        return f"regex {listener.event_name_regex.pattern}"
    return f"event {listener.event_name}"


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
