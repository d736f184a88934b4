"""The Celery apps a listener sends through: eventisc's own, or the host's named by
``celery_app`` (:func:`import_app`); and the settings that keep a publish from blocking forever.

Celery's publish can block forever when the broker is down or a pooled connection went dead
(celery/celery#4296, #4627, #6911). Every publish carries a bounded retry policy derived from
the listener's ``timeout`` (:func:`publish_options`); eventisc's own apps also get connect, read,
write and confirm timeouts (:func:`app_config`). A host app's connect and socket timeouts are
its own settings.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from typing import Any
from urllib.parse import urlsplit

import celery

from ..._fork import register
from ...errors import ConfigError

__all__ = ["app_config", "import_app", "own_apps", "producers", "publish_options"]

logger = logging.getLogger(__name__)

_AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp", "pyamqps"})
_REDIS_SCHEMES = frozenset({"redis", "rediss", "sentinel"})


def _op_timeout(timeout: float) -> float:
    # One network wait (a connect, a read, a write, a confirm). A dead broker can cost up to
    # five of them: the failing call, a reconnection inside a queue declaration, the
    # reconnection of the retry (two attempts each).
    return timeout / 6


def publish_options(timeout: float) -> dict[str, Any]:
    """The ``send_task`` kwargs bounding one publish to about ``timeout`` seconds.

    One retry (which reconnects: enough for a pooled connection the broker closed), and the
    write and publisher-confirm waits bounded. With a host app (``current_app``) the connect
    and read waits are the app's settings: ``broker_connection_timeout`` (default 4 s) and,
    to not block forever on a half-open connection, ``broker_transport_options`` with
    ``read_timeout``/``write_timeout`` (amqp) or ``socket_timeout``/
    ``socket_connect_timeout`` (redis), and ``broker_pool_acquire_timeout``.
    """
    op = _op_timeout(timeout)
    return {
        "retry": True,
        "retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": op,
            "interval_max": op,
        },
        "timeout": op,
        "confirm_timeout": op,
    }


def app_config(url: str, timeout: float) -> dict[str, Any]:
    """The settings of eventisc's own Celery app for ``url``: every wait bounded."""
    op = _op_timeout(timeout)
    policy = publish_options(timeout)["retry_policy"]
    transport: dict[str, Any] = {
        **policy,  # first connection of a pooled connection
        "connect_retries_timeout": op,
        # kombu pools connections by URL and transport options, globally: this key keeps our
        # pool apart from the host app's and from a parent process's (os.fork).
        "eventisc_pid": os.getpid(),
    }
    scheme = urlsplit(url).scheme.lower()
    if scheme in _AMQP_SCHEMES:
        transport.update(read_timeout=op, write_timeout=op, confirm_publish=True)
    elif scheme in _REDIS_SCHEMES:
        transport.update(socket_timeout=op, socket_connect_timeout=op)
    return {
        "broker_url": url,
        "broker_connection_timeout": op,
        "broker_pool_acquire_timeout": timeout / 2,  # all pooled connections busy
        "broker_transport_options": transport,
        "task_publish_retry": True,
        "task_publish_retry_policy": policy,
    }


def import_app(spec: str, path: str = "celery_app") -> celery.Celery:
    """The Celery app ``spec`` names, ``module:attribute`` (``proj.celery:app``), imported
    now; a ConfigError at ``path`` when it cannot be imported or is no Celery app."""
    module_name, colon, attribute = spec.partition(":")
    if not (module_name and colon and attribute):
        raise ConfigError(f"{spec!r} is not MODULE:ATTRIBUTE, as in `proj.celery:app`", path)
    try:
        found: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            found = getattr(found, name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r} for {spec!r}: {exc} (the current directory and "
            "PYTHONPATH are searched)",
            path,
        ) from exc
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no {attribute!r} ({spec!r})", path) from None
    except Exception as exc:  # the module itself failed: its settings, an import it makes
        raise ConfigError(
            f"importing {module_name!r} for {spec!r} failed: {type(exc).__name__}: {exc}", path
        ) from exc
    if not isinstance(found, celery.Celery):
        raise ConfigError(f"{spec!r} is not a Celery app but {found!r:.80}", path)
    return found


class _OwnCelery(celery.Celery):
    """A Celery app that writes to its own broker even when CELERY_BROKER_URL is set."""

    eventisc_broker_url = ""

    def connection_for_write(self, url: str | None = None, **kwargs: Any) -> Any:
        return super().connection_for_write(url or self.eventisc_broker_url, **kwargs)


class _Apps:
    """eventisc's own Celery apps, one per (broker URL, timeout), shared by the listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[tuple[str, float], tuple[celery.Celery, int]] = {}
        self._orphans: list[Any] = []

    def acquire(self, url: str, timeout: float) -> celery.Celery:
        with self._lock:
            app, users = self._apps.get((url, timeout), (None, 0))
            if app is None:
                app = _OwnCelery("eventisc", set_as_current=False, fixups=[])
                app.eventisc_broker_url = url
                app.conf.update(app_config(url, timeout))
            self._apps[(url, timeout)] = (app, users + 1)
            return app

    def release(self, url: str, timeout: float, app: celery.Celery) -> None:
        with self._lock:
            current, users = self._apps.get((url, timeout), (None, 0))
            if current is not app:
                return
            if users > 1:
                self._apps[(url, timeout)] = (app, users - 1)
                return
            del self._apps[(url, timeout)]
        producers.close(app)
        app.close()

    def _after_fork(self) -> None:
        # The parent's apps hold the parent's sockets: keep them referenced, never close them.
        self._lock = threading.Lock()
        self._orphans.append(self._apps)
        self._apps = {}


#: The shared registry of eventisc's own apps.
own_apps = register(_Apps())


class _Producers:
    """One producer per thread and Celery app, on a connection of its own that the app makes
    (its broker and settings), not taken from the app's pool: a send skips the pool's acquire
    and release, and a thread holds none of the pool's ``broker_pool_limit`` slots. The
    connection is made on the first publish, again by the publish's retry when the broker
    dropped it, and replaced after a failed send (:meth:`drop`); a thread that ends leaves it
    to the garbage collector. Fork-safe: a child makes its own."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        #: Every thread's connections, by app (closed with the app: :meth:`close`).
        self._connections: dict[int, weakref.WeakSet[Any]] = {}
        self._orphans: list[Any] = []

    def get(self, app: celery.Celery) -> Any:
        """This thread's producer for ``app``."""
        mine = self._mine()
        found = mine.get(id(app))
        if found is not None and found[0] is app:
            return found[1]
        connection = app.connection_for_write()
        producer = app.amqp.Producer(connection, auto_declare=False)
        mine[id(app)] = (app, producer)
        with self._lock:
            self._connections.setdefault(id(app), weakref.WeakSet()).add(connection)
        return producer

    def drop(self, app: celery.Celery) -> None:
        """Close this thread's producer for ``app`` (the next send makes a new one)."""
        found = self._mine().pop(id(app), None)
        if found is None:
            return
        connection = found[1].connection
        with self._lock:
            self._connections.get(id(app), weakref.WeakSet()).discard(connection)
        _release(connection)

    def close(self, app: celery.Celery) -> None:
        """Close every thread's producer connection for ``app`` (an app being closed)."""
        with self._lock:
            connections = list(self._connections.pop(id(app), ()))
        for connection in connections:
            _release(connection)

    def _mine(self) -> dict[int, tuple[celery.Celery, Any]]:
        mine: dict[int, tuple[celery.Celery, Any]] | None = getattr(self._local, "by_app", None)
        if mine is None:
            mine = self._local.by_app = {}
        return mine

    def _after_fork(self) -> None:
        # The parent's connections: kept referenced, never used nor closed here.
        self._orphans.append((self._local, self._connections))
        self._local, self._lock, self._connections = threading.local(), threading.Lock(), {}


def _release(connection: Any) -> None:
    """Close a producer's connection; one that fails to close (a dead socket) is dropped."""
    try:
        connection.release()
    except Exception:
        logger.debug("closing a celery producer's connection failed", exc_info=True)


#: The producers of every celery listener of this process.
producers = register(_Producers())
