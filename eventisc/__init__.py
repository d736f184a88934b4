"""eventisc: fire events from your code; a config file decides who hears them and how.

    import eventisc
    eventisc.trigger("user_created", {"user": user})

The default app is built on first use from ``EVENTISC_CONFIG`` (a YAML or JSON file) and
``EVENTISC_NAME_PREFIX``; ``eventisc.check()`` builds it at once, so a mistake in the config
stops the service at its start instead of failing its first ``trigger``. Set
``eventisc.default_app = None`` to have the next call build it again from the environment.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .metrics_server import MetricsServer

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
    "check",
    "default_app",
    "get_current_app",
    "heartbeat",
    "init_default_app",
    "listener",
    "start_heartbeat",
    "start_metrics_server",
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
    overrides = dict(options)
    if name_prefix is not None:
        overrides["name_prefix"] = name_prefix
    if listeners is not None:
        overrides["listeners"] = listeners
    config.update(overrides)
    return App.from_config(config, source, overrides=overrides)


#: The default apps built from the environment, with the variables they were built from.
_from_environ: weakref.WeakKeyDictionary[App, tuple[str | None, str | None]] = (
    weakref.WeakKeyDictionary()
)


def _environ() -> tuple[str | None, str | None]:
    return os.environ.get("EVENTISC_CONFIG") or None, os.environ.get("EVENTISC_NAME_PREFIX")


def _outdated(app: App) -> bool:
    """Whether ``app`` was built from the environment and the environment changed since
    (the pytest plugin builds the default app again then)."""
    built_from = _from_environ.get(app)
    return built_from is not None and built_from != _environ()


def _default_app_from(
    name_prefix: str | None,
    listeners: Iterable[ListenerLike] | None,
    config_file: ConfigSource | None,
    options: dict[str, Any],
) -> App:
    """The app :func:`init_default_app` makes the default (not made the default here)."""
    environ = None
    if listeners is None and config_file is None:
        environ = _environ()
        config_file = environ[0]
    try:
        config, source = read_config(config_file) if config_file is not None else ({}, None)
        if name_prefix is None and config.get("name_prefix") is None:
            name_prefix = os.environ.get("EVENTISC_NAME_PREFIX", "")
        listeners = _with_declared(config, listeners)
        app = _build_app(config, source, name_prefix, listeners, options)
    except ConfigError as exc:
        if environ is None or environ[0] is None:
            raise
        raise exc.from_origin(f"EVENTISC_CONFIG={environ[0]}") from None  # where it came from
    if environ is not None:
        _from_environ[app] = environ
    return app


def init_default_app(
    name_prefix: str | None = None,
    listeners: Iterable[ListenerLike] | None = None,
    config_file: ConfigSource | None = None,
    **options: Any,
) -> App:
    """(Re)build the default app and return it.

    Without ``listeners`` or ``config_file`` the config comes from ``EVENTISC_CONFIG`` (its
    errors say so: ``(config from EVENTISC_CONFIG=...)``); ``EVENTISC_NAME_PREFIX`` is the
    prefix when neither the argument nor the config sets one. The previous default app, if
    any, is closed.
    """
    return _install_default(_default_app_from(name_prefix, listeners, config_file, options))


def _with_declared(
    config: dict[str, Any], listeners: Iterable[ListenerLike] | None
) -> Iterable[ListenerLike] | None:
    """The listeners of a default app: ``listeners`` (else the config's) and the function
    listeners declared with :func:`listener` after them."""
    from .listeners.python import declared_listeners

    declared = declared_listeners()
    if not declared:
        return listeners
    given = listeners if listeners is not None else config.get("listeners") or ()
    return [*given, *declared]


def _install_default(app: App) -> App:
    """Make ``app`` the default app; the previous one is closed."""
    global default_app
    with _default_lock:
        previous, default_app = default_app, app
    if previous is not None and previous is not app:
        previous.close()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _export_default()
    return app


def _current_default() -> App | None:
    return default_app


def _export_default() -> None:
    """Prometheus' multiprocess mode: write the default app's numbers for the scrape that adds
    up every process (docs/observability.md)."""
    try:
        from .prometheus import export_default
    except ImportError as exc:
        import logging

        logging.getLogger(__name__).warning("PROMETHEUS_MULTIPROC_DIR is set: %s", exc)
        return
    export_default(_current_default)


def check(*, required: bool = True) -> App:
    """The startup check: build the default app now (unless it is built already) and
    return it, so a mistake in the config raises :class:`ConfigError` where the service
    starts, not on its first ``trigger``. Call it once at import or startup
    (``eventisc.check()``); ``len(eventisc.check().listeners)`` counts the listeners.

    ``required``: with no default app yet and ``EVENTISC_CONFIG`` unset, raise ConfigError
    instead of building an app without listeners (``required=False`` accepts that).
    """
    app = default_app
    if app is None and required and _environ()[0] is None and _build_default is None:
        raise ConfigError(
            "EVENTISC_CONFIG is not set, so the default app would have no listeners: set it "
            "to the config file (or call eventisc.init_default_app(...) before "
            "eventisc.check(); eventisc.check(required=False) accepts no config)"
        )
    return app if app is not None else get_current_app()


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
        app = _build_default() if _build_default is not None else init_default_app()
    return app


#: What builds the default app when there is none, instead of :func:`init_default_app` from
#: the environment: an integration's own (``eventisc.contrib.django``: from the settings).
_build_default: Callable[[], App] | None = None


def listener(
    event_name: str | None = None, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@eventisc.listener("user_created")`` makes the function a listener of the
    default app (kind ``python``, called as ``func(event_name, event_data)``) and returns it
    unchanged. ``options`` as for :meth:`App.listener`.

    The function is remembered: the default app has it now if it is built already, and every
    default app built later gets it too. Declare listeners in a module imported at startup.
    Raises ConfigError for bad options.
    """
    from .listeners.python import declare

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        built = declare(func, event_name, options)
        app = default_app
        if app is not None:
            app.add_listener(built)
        return func

    return decorate


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


def start_metrics_server(port: int = 9464, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread: the apps of this process (the
    default app as ``app="eventisc"``, apps given to ``App.register_prometheus()``) and
    prometheus_client's default registry; with ``PROMETHEUS_MULTIPROC_DIR`` set, the numbers
    of every process writing there, added up. ``port=0`` picks a free port. Returns a handle
    with ``url``, ``port`` and ``stop()``. Needs ``pip install 'eventisc[prometheus]'``
    (ImportError); OSError when the port is taken."""
    from .metrics_server import start

    return start(port, addr, _current_default)
