"""eventisc: fire events from your code; a config file decides who hears them and how.

    import eventisc
    eventisc.trigger("user_created", {"user": user})

The default app is built on first use from ``EVENTISC_CONFIG`` (a YAML or JSON file) and
``EVENTISC_NAME_PREFIX``. Set ``eventisc.default_app = None`` to have the next call build it
again from the environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from ._fork import on_fork
from ._version import __version__ as __version__
from .app import App, ListenerLike
from .config import ConfigSource, read_config
from .errors import (
    CircuitOpenError,
    ConfigError,
    ConnectError,
    DeliveryError,
    DeliveryTimeout,
    EventiscError,
    HTTPStatusError,
    ListenerDisabled,
    OutboxError,
    QueueFull,
    Rejected,
    SignatureError,
    StaleConnection,
    TemplateError,
    TriggerError,
)
from .filters import ExprFilter, Filter
from .heartbeat import Heartbeat
from .listeners.base import Listener
from .notification import Notification
from .report import Delivery, Report
from .settings import DispatcherSettings, RetryPolicy

__all__ = [
    "App",
    "CircuitOpenError",
    "ConfigError",
    "ConnectError",
    "Delivery",
    "DeliveryError",
    "DeliveryTimeout",
    "DispatcherSettings",
    "EventiscError",
    "ExprFilter",
    "Filter",
    "HTTPStatusError",
    "ListenerDisabled",
    "Heartbeat",
    "Listener",
    "Notification",
    "OutboxError",
    "QueueFull",
    "Rejected",
    "SignatureError",
    "StaleConnection",
    "Report",
    "RetryPolicy",
    "TemplateError",
    "TriggerError",
    "create_app",
    "atrigger",
    "default_app",
    "get_current_app",
    "heartbeat",
    "init_default_app",
    "start_heartbeat",
    "trigger",
]

#: The app used by the module-level functions; built on first use.
default_app: App | None = None
_default_lock = threading.Lock()


@on_fork
def _new_default_lock() -> None:
    global _default_lock
    _default_lock = threading.Lock()


#: event-isc's name for the app class: ``EventApp(name_prefix, listeners)`` builds one, as
#: event-isc's constructor did (not in ``__all__``: new code says ``App``).
EventApp = App
#: An older alias of :class:`App`, kept for code that used it.
EventiscApp = App


def create_app(
    name_prefix: str | None = None,
    listeners: Iterable[ListenerLike] | None = None,
    config_file: ConfigSource | None = None,
    **options: Any,
) -> App:
    """Build an app from a config file (path, file object or dict) and/or arguments.

    Every top-level config key can be given as a keyword (``raise_errors=True``); a keyword
    wins over the file. Raises :class:`ConfigError` when anything in the config is wrong.
    """
    config, source = read_config(config_file) if config_file is not None else ({}, None)
    return _build_app(config, source, name_prefix, listeners, options)


def _build_app(
    config: dict[str, Any],
    source: str | None,
    name_prefix: str | None,
    listeners: Iterable[ListenerLike] | None,
    options: dict[str, Any],
) -> App:
    if name_prefix is not None:
        config["name_prefix"] = name_prefix
    if listeners is not None:
        config["listeners"] = listeners
    config.update(options)
    return App.from_config(config, source)


def init_default_app(
    name_prefix: str | None = None,
    listeners: Iterable[ListenerLike] | None = None,
    config_file: ConfigSource | None = None,
    **options: Any,
) -> App:
    """(Re)build the default app and return it.

    Without ``listeners`` or ``config_file`` the config comes from ``EVENTISC_CONFIG``;
    ``EVENTISC_NAME_PREFIX`` is the prefix when neither the argument nor the config sets one.
    The previous default app, if any, is closed.
    """
    global default_app
    if listeners is None and config_file is None:
        config_file = os.environ.get("EVENTISC_CONFIG") or None
    config, source = read_config(config_file) if config_file is not None else ({}, None)
    if name_prefix is None and config.get("name_prefix") is None:
        name_prefix = os.environ.get("EVENTISC_NAME_PREFIX", "")
    app = _build_app(config, source, name_prefix, listeners, options)
    with _default_lock:
        previous, default_app = default_app, app
    if previous is not None and previous is not app:
        previous.close()
    return app


def get_current_app() -> App:
    """The default app, built from the environment on first use."""
    app = default_app
    if app is not None:
        return app
    with _default_lock:
        app = default_app
    if app is None:
        # init_default_app takes the lock itself; two threads racing here build two apps
        # and the first one is closed, which is harmless.
        app = init_default_app()
    return app


def trigger(event_name: str, event_data: Any = None, *, connection: Any = None) -> int:
    """Trigger an event on the default app; return how many listeners were notified.
    ``connection``: write outbox rows in this open transaction (see :meth:`App.trigger`)."""
    app = default_app
    if app is None:
        app = get_current_app()
    if connection is None:
        return app.trigger(event_name, event_data)
    return app.trigger(event_name, event_data, connection=connection)


async def atrigger(event_name: str, event_data: Any = None, *, connection: Any = None) -> int:
    """:func:`trigger` for ``async`` code: delivers from a worker thread, so the event loop
    never waits; returns the same count."""
    app = default_app
    if app is None:
        app = get_current_app()
    return await app.atrigger(event_name, event_data, connection=connection)


def heartbeat() -> None:
    """Keep the default app's idle broker connections alive; call it every minute or so,
    or use :func:`start_heartbeat`."""
    get_current_app().heartbeat()


def start_heartbeat(interval: float = 60.0) -> Heartbeat:
    """Start a daemon thread calling :func:`heartbeat` on the default app every ``interval``
    seconds; returns a handle with ``stop()``."""
    return get_current_app().start_heartbeat(interval)
