"""The App: listeners, their router, and ``trigger()`` running route → filter → render → deliver."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .config import env_flag, validate_config
from .errors import ConfigError, EventiscError, TriggerError
from .heartbeat import Heartbeat
from .listeners.base import Listener
from .notification import Notification
from .routing import Router

__all__ = ["App"]

logger = logging.getLogger("eventisc")

#: Values the ``listeners`` argument accepts: config mappings or Listener instances.
ListenerLike = Listener | Mapping[str, Any]


class App:
    """A set of listeners and the events they hear.

    ``trigger`` may be called from many threads at once. ``close()`` releases connections;
    an App is also a context manager.
    """

    def __init__(
        self,
        name_prefix: str | None = "",
        listeners: Iterable[ListenerLike] | None = None,
        *,
        raise_errors: bool = False,
        dry_run: bool | None = None,
        heartbeat: float | None = None,
        source: str | None = None,
    ):
        self.name_prefix: str = name_prefix or ""
        self.raise_errors = raise_errors
        #: Render and log instead of delivering; defaults to the EVENTISC_DRYRUN variable
        #: read when the app is created.
        self.dry_run: bool = env_flag("EVENTISC_DRYRUN") if dry_run is None else dry_run
        self.source = source
        self.listeners: list[Listener] = []
        self._names: set[str] = set()
        for index, item in enumerate(listeners or ()):
            self._add(item, f"listeners[{index}]")
        self._router = Router(self.listeners)
        self._heartbeat: Heartbeat | None = None
        if heartbeat:
            self.start_heartbeat(heartbeat)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str | None = None) -> App:
        """Build an app from a config mapping (already read from its file)."""
        validate_config(config, source)
        options = dict(config)
        try:
            return cls(
                options.pop("name_prefix", ""),
                options.pop("listeners", None),
                source=source,
                **options,
            )
        except ConfigError as exc:
            if source and not exc.source:
                raise exc.within("", source) from None
            raise

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: ListenerLike) -> Listener:
        """Add a listener (a Listener or a config mapping) after the app was created."""
        added = self._add(listener, f"listeners[{len(self.listeners)}]")
        self._router = Router(self.listeners)
        return added

    def _add(self, item: ListenerLike, path: str) -> Listener:
        if isinstance(item, Listener):
            listener = item
        elif isinstance(item, Mapping):
            listener = Listener.from_config(item, path)
        else:
            raise ConfigError(
                f"expected a listener mapping or a Listener, not {type(item).__name__}", path
            )
        if listener.name in self._names:
            if listener._explicit_name:
                raise ConfigError(f"duplicate listener name {listener.name!r}", f"{path}.name")
            base, n = listener.name, 2
            while f"{base}#{n}" in self._names:
                n += 1
            listener.name = f"{base}#{n}"
        self._names.add(listener.name)
        self.listeners.append(listener)
        return listener

    def routes(self, event_name: str) -> tuple[Listener, ...]:
        """The listeners ``event_name`` reaches (``name_prefix`` is added first)."""
        return self._router.match(self.name_prefix + event_name)

    # -- triggering ---------------------------------------------------------------------------

    def trigger(self, event_name: str, event_data: Any = None) -> int:
        """Notify every listener of ``event_name``; return how many were notified.

        ``event_data`` defaults to an empty dict. A failing listener never stops the others:
        its failure is logged on the ``eventisc`` logger and not counted; with
        ``raise_errors`` a :class:`TriggerError` listing the failures is raised at the end.
        """
        name = self.name_prefix + event_name
        listeners = self._router.match(name)
        if not listeners:
            return 0
        if event_data is None:
            event_data = {}
        notified = 0
        failures: list[tuple[str, BaseException]] | None = None
        for listener in listeners:
            try:
                if self.notify_listener(listener, name, event_data) is not None:
                    notified += 1
            except Exception as exc:  # one listener's failure never stops the others
                self._log_failure(listener, name, exc)
                if failures is None:
                    failures = []
                failures.append((listener.name, exc))
        if failures and self.raise_errors:
            raise TriggerError(name, failures, notified)
        return notified

    def notify_listener(
        self, listener: Listener, event_name: str, event_data: Any
    ) -> Notification | None:
        """Filter, render and deliver one event to one listener.

        ``event_name`` is the full name. Returns the notification, or None when the filter
        skipped the event or the listener declined it; raises when it failed.
        """
        if listener.filter is not None and not listener.filter(event_name, event_data):
            return None
        notification = listener.render(event_name, event_data)
        if self.dry_run:
            logger.info(
                "dry-run: listener %r would send %r",
                listener.name,
                notification.payload,
                extra={"event_name": event_name, "listener": listener.name},
            )
            return notification
        if listener.deliver(notification) is False:
            return None
        return notification

    def _log_failure(self, listener: Listener, event_name: str, exc: BaseException) -> None:
        if isinstance(exc, EventiscError) and getattr(exc, "listener", "") is None:
            exc.listener = listener.name  # type: ignore[attr-defined]
        logger.error(
            "listener %r failed for event %r: %s",
            listener.name,
            event_name,
            exc,
            exc_info=exc,
            extra={"event_name": event_name, "listener": listener.name},
        )

    # -- connections ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Let every listener keep its idle connections alive (and drop the dead ones)."""
        for listener in self.listeners:
            try:
                listener.heartbeat()
            except Exception:
                logger.exception("heartbeat of listener %r failed", listener.name)

    def start_heartbeat(self, interval: float = 60.0) -> Heartbeat:
        """Start (or restart) a daemon thread calling :meth:`heartbeat` every ``interval`` s."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._heartbeat = Heartbeat(self.heartbeat, interval)
        return self._heartbeat

    def close(self) -> None:
        """Stop the heartbeat and release every listener's connections. Idempotent."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        for listener in self.listeners:
            try:
                listener.close()
            except Exception:
                logger.exception("closing listener %r failed", listener.name)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<App prefix={self.name_prefix!r} listeners={len(self.listeners)}>"
