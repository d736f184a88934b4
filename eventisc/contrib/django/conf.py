"""The default app of a Django process: its config from the settings, built once, closed at
exit; and :class:`DjangoApp`, which writes outbox rows through Django's connection inside
``transaction.atomic``.

Settings read:

- ``EVENTISC``: the config as a mapping (the keys of a config file);
- ``EVENTISC_CONFIG``: the config file's path (without either setting: the ``EVENTISC_CONFIG``
  environment variable, as outside Django; without that either: no config, only the function
  listeners declared with ``@eventisc.listener``);
- ``EVENTISC_DATABASE``: the database alias whose connection outbox rows are written through
  inside ``atomic`` (default ``"default"``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import connections

import eventisc

from ...app import App
from ...config import ConfigSource, read_config
from ...errors import ConfigError
from ...report import Report

__all__ = ["DjangoApp", "build_app", "config_error", "outbox_database_mismatch", "setup"]

logger = logging.getLogger("eventisc.contrib.django")

#: Where a config given in the settings is said to come from, in messages.
SETTING = "settings.EVENTISC"


class DjangoApp(App):
    """An :class:`~eventisc.App` whose outbox rows, written by a ``trigger`` or ``dispatch``
    without ``connection=`` inside ``transaction.atomic``, go through Django's connection
    (``database``): committed or rolled back with the block. Outside a block they are
    committed at once, through the app's own connections."""

    #: The alias of the database whose connection writes the rows (``EVENTISC_DATABASE``).
    database: str = "default"

    def _connection(self, connection: Any) -> Any:
        if connection is None and self.outbox_settings is not None:
            django_connection = connections[self.database]
            if django_connection.in_atomic_block:
                return django_connection
        return connection

    def trigger(self, event_name: str, event_data: Any = None, *, connection: Any = None) -> int:
        """:meth:`App.trigger`; inside ``atomic``, outbox rows go through Django's
        connection."""
        return super().trigger(event_name, event_data, connection=self._connection(connection))

    def dispatch(
        self, event_name: str, event_data: Any = None, *, connection: Any = None
    ) -> Report:
        """:meth:`App.dispatch`; inside ``atomic``, outbox rows go through Django's
        connection."""
        return super().dispatch(event_name, event_data, connection=self._connection(connection))


def _source() -> tuple[ConfigSource | None, str | None, str | None]:
    """The config to read, its name for messages, and where its file's name came from."""
    mapping = getattr(settings, "EVENTISC", None)
    path = getattr(settings, "EVENTISC_CONFIG", None)
    if mapping is not None and path is not None:
        raise ConfigError(
            "set one of settings.EVENTISC (the config) and settings.EVENTISC_CONFIG (its "
            "file), not both",
            source="settings",
        )
    if mapping is not None:
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                "must be a mapping with the keys of a config file (`listeners`, ...), not "
                f"{type(mapping).__name__}",
                source=SETTING,
            )
        return mapping, SETTING, None
    if path is not None:
        return os.fspath(path), None, f"settings.EVENTISC_CONFIG={path}"
    from_environ = os.environ.get("EVENTISC_CONFIG")
    if from_environ:
        return from_environ, None, f"EVENTISC_CONFIG={from_environ}"
    return None, None, None


def build_app() -> DjangoApp:
    """A :class:`DjangoApp` from the settings, with the declared function listeners; raises
    ConfigError (located in ``settings.EVENTISC`` or the file, and saying which setting or
    variable named the file)."""
    source, label, origin = None, None, None
    try:
        source, label, origin = _source()
        config, read_label = read_config(source) if source is not None else ({}, None)
        label = label or read_label
        if config.get("name_prefix") is None:
            config["name_prefix"] = os.environ.get("EVENTISC_NAME_PREFIX", "")
        listeners = eventisc._with_declared(config, None)
        if listeners is not None:
            config["listeners"] = listeners
        app = DjangoApp.from_config(config, label)
        assert isinstance(app, DjangoApp)
    except ConfigError as exc:
        if label and not exc.source:
            exc = exc.within("", label)
        if origin:
            raise exc.from_origin(origin) from None
        raise exc from None
    app.database = getattr(settings, "EVENTISC_DATABASE", "default")
    return app


#: The error of the last build (None: it succeeded, or none was tried).
_error: ConfigError | None = None
_lock = threading.Lock()


def config_error() -> ConfigError | None:
    """The ConfigError the default app could not be built for, or None."""
    return _error


def _build_default() -> App:
    """Build the default app from the settings and make it the default (the factory
    :func:`eventisc.get_current_app` calls when there is none)."""
    global _error
    with _lock:
        try:
            app = build_app()
        except ConfigError as exc:
            _error = exc
            raise
        _error = None
    return eventisc._install_default(app)


def setup() -> None:
    """Build the default app now, and have it built from the settings whenever there is
    none; close it when the process exits. A config error is logged and kept for the check."""
    eventisc._build_default = _build_default
    try:
        _build_default()
    except ConfigError as exc:
        logger.error("eventisc: the default app cannot be built: %s", exc)


@atexit.register
def _close_default() -> None:
    app = eventisc.default_app
    if isinstance(app, DjangoApp):
        try:
            app.close()
        except Exception:
            logger.exception("closing %r at exit failed", app)


def outbox_database_mismatch() -> str | None:
    """Why outbox rows written through Django's connection would not land where the relays
    read them (the ``outbox.url`` names another database than ``EVENTISC_DATABASE``), or
    None."""
    app = eventisc.default_app
    outbox = app.outbox_settings if isinstance(app, DjangoApp) else None
    if outbox is None:
        return None
    alias = getattr(settings, "EVENTISC_DATABASE", "default")
    database = settings.DATABASES.get(alias)
    if not database or "postgresql" not in str(database.get("ENGINE", "")):
        return f"outbox rows are written through database {alias!r}, which is not PostgreSQL"
    url = urlsplit(outbox.url)
    theirs = (
        str(database.get("HOST") or "localhost"),
        int(database.get("PORT") or 5432),
        str(database.get("NAME") or ""),
    )
    ours = (url.hostname or "localhost", url.port or 5432, unquote(url.path.lstrip("/")))
    local = {"localhost", "127.0.0.1", "::1", ""}
    same_host = ours[0] == theirs[0] or (ours[0] in local and theirs[0] in local)
    if same_host and ours[1:] == theirs[1:]:
        return None
    return (
        f"outbox.url names database {ours[2]!r} on {ours[0]}:{ours[1]}, but rows written "
        f"inside transaction.atomic go through Django's database {alias!r} ({theirs[2]!r} on "
        f"{theirs[0]}:{theirs[1]}): the relays would not see them. Point both at the same "
        "database, or set EVENTISC_DATABASE."
    )
