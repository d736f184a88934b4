"""The exceptions eventisc raises.

Everything derives from :class:`EventiscError`, so callers never need to import requests, pika
or kombu to catch what a delivery raised::

    EventiscError
     ├── ConfigError          the configuration is wrong; raised when it is loaded
     ├── TemplateError        a template or filter failed for one event (missing key, bad value)
     ├── DeliveryError        a notification could not be delivered
     │    ├── ConnectError    the receiver or broker could not be reached, or the link broke
     │    │    ├── CircuitOpenError  not tried: the receiver was unreachable a moment ago
     │    │    └── StaleConnection   a kept connection was found dead: send again, at once
     │    ├── DeliveryTimeout the receiver or broker did not answer in time
     │    ├── Rejected        the receiver answered with a refusal (AMQP nack, unroutable)
     │    │    └── HTTPStatusError   an HTTP status outside ``success_status``
     │    ├── QueueFull       background delivery: the queue had no room
     │    ├── ListenerDisabled  not sent: the receiver answered 410 Gone earlier
     │    └── TriggerError    ``raise_errors: true``: every failure of one trigger, listed
     ├── OutboxError          the outbox table could not be written or read (PostgreSQL)
 └── SignatureError       a received webhook's signature or timestamp did not check out

``ConnectError`` and ``DeliveryTimeout`` are transient: retrying later may succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .secret_values import redact

__all__ = [
    "CircuitOpenError",
    "ConfigError",
    "ConnectError",
    "DeliveryError",
    "DeliveryTimeout",
    "EventiscError",
    "HTTPStatusError",
    "ListenerDisabled",
    "OutboxError",
    "QueueFull",
    "Rejected",
    "SignatureError",
    "StaleConnection",
    "TemplateError",
    "TriggerError",
]


class EventiscError(Exception):
    """Base class of every error eventisc raises. Its message never shows a secret value
    (see :mod:`eventisc.secret_values`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(EventiscError, ValueError):
    """The configuration is invalid.

    ``path`` is where in the config the bad value is (``listeners[1].url``), ``source`` the
    file it came from (or None for a dict). A config with several mistakes raises one
    ConfigError listing them all: ``errors`` holds one ConfigError per mistake, in file order
    (``[self]`` when there is one), and ``message`` and ``path`` are the first one's. ``origin``
    says where the file's name came from (``EVENTISC_CONFIG=/etc/events.yaml``), or is None.
    """

    def __init__(
        self,
        message: str,
        path: str | None = None,
        source: str | None = None,
        *,
        errors: list[ConfigError] | None = None,
        origin: str | None = None,
    ):
        self.message = redact(message)
        self.path = path or None
        self.source = source
        self.origin = origin
        #: Every mistake found, in file order; ``[self]`` for a single one.
        self.errors: list[ConfigError] = list(errors) if errors and len(errors) > 1 else [self]
        super().__init__(self._text())

    @classmethod
    def combine(
        cls, errors: list[ConfigError], source: str | None = None, origin: str | None = None
    ) -> ConfigError:
        """One ConfigError listing ``errors`` (in the order given), located in ``source``."""
        flat = [one for error in errors for one in error.errors]
        if source is not None:
            flat = [one if one.source else one.within("", source) for one in flat]
        first = flat[0]
        if len(flat) == 1 and origin is None:
            return first
        return cls(first.message, first.path, first.source, errors=flat, origin=origin)

    def _text(self) -> str:
        note = f" (config from {self.origin})" if self.origin else ""
        if len(self.errors) == 1:
            where = ": ".join(p for p in (self.source, self.path) if p)
            return f"{where}: {self.message}{note}" if where else f"{self.message}{note}"
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}{len(self.errors)} errors{note}:"]
        for error in self.errors:
            if error.source != self.source:
                lines.append(f"  {error}")
            else:
                lines.append(
                    f"  {error.path}: {error.message}" if error.path else f"  {error.message}"
                )
        return "\n".join(lines)

    def within(self, prefix: str, source: str | None = None) -> ConfigError:
        """Return the same error located under ``prefix`` (``listeners[2]``) of ``source``."""
        if len(self.errors) > 1:
            moved = [error.within(prefix, source) for error in self.errors]
            return ConfigError.combine(moved, origin=self.origin)
        if self.path:
            sep = "" if self.path.startswith("[") else "."
            path = f"{prefix}{sep}{self.path}" if prefix else self.path
        else:
            path = prefix
        err = ConfigError(self.message, path, source or self.source, origin=self.origin)
        err.__cause__ = self.__cause__
        return err

    def from_origin(self, origin: str) -> ConfigError:
        """The same error, saying where the config file's name came from: ``origin``
        (``EVENTISC_CONFIG=/etc/events.yaml``)."""
        err = ConfigError.combine(self.errors, origin=origin)
        err.__cause__ = self.__cause__
        return err


#: The file and the place in it (``listeners[2]``) of what is being built from a config.
_location: ContextVar[tuple[str | None, str]] = ContextVar("eventisc_config_location")


@contextmanager
def config_location(source: str | None, prefix: str) -> Iterator[None]:
    """Inside the block, :func:`located` puts a path under ``prefix`` of ``source``: the app
    builds each listener in one, so a warning about a value names the file and the listener
    as an error does (errors get theirs from :meth:`ConfigError.within`)."""
    token = _location.set((source, prefix))
    try:
        yield
    finally:
        _location.reset(token)


def located(path: str) -> str:
    """``data.email`` as ``events.yaml: listeners[2].data.email`` inside
    :func:`config_location` (as it is outside)."""
    source, prefix = _location.get((None, ""))
    if prefix:
        path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
    return ": ".join(p for p in (source, path) if p)


class _ListenerError(EventiscError):
    """An error about one listener; ``listener`` is filled in by the app when it is known."""

    def __init__(self, message: str, listener: str | None = None):
        self.message = redact(message)
        self.listener = listener
        super().__init__(message)

    def _where(self) -> list[str]:
        return [f"listener {self.listener!r}"] if self.listener else []

    def __str__(self) -> str:
        where = ", ".join(self._where())
        return f"{where}: {self.message}" if where else self.message


class TemplateError(_ListenerError):
    """A template, filter or encoding step failed while rendering one event.

    ``template`` is the template's text. Rendering failures are never worth retrying: the same
    event fails the same way.
    """

    def __init__(self, message: str, listener: str | None = None, template: str | None = None):
        self.template = template
        super().__init__(message, listener)

    def _where(self) -> list[str]:
        where = super()._where()
        if self.template is not None:
            where.append(f"template `{self.template}`")
        return where


class DeliveryError(_ListenerError):
    """A rendered notification could not be delivered."""

    #: Whether trying again later may succeed.
    transient = False


class ConnectError(DeliveryError):
    """The receiver or broker could not be reached, or the connection broke mid-way."""

    transient = True


class CircuitOpenError(ConnectError):
    """Not tried: the listener's last attempts could not reach its receiver, and its circuit
    breaker holds background attempts back for a while (see :mod:`eventisc.delivery.breaker`)."""


class StaleConnection(ConnectError):
    """A connection the listener kept (pooled) turned out dead when it was used, and was
    dropped. Sending again at once, on a fresh connection, is expected to work: the delivery
    layers do it once, right away, without counting an attempt (a broker that restarted while
    the connection was idle costs nothing). A second failure is an ordinary failure."""


class DeliveryTimeout(DeliveryError):
    """The receiver or broker did not answer within the listener's timeout."""

    transient = True


class QueueFull(DeliveryError):
    """Background delivery: the dispatcher's queue had no room for the notification."""

    transient = True


class Rejected(DeliveryError):
    """The receiver answered, and the answer was a refusal."""


class HTTPStatusError(Rejected):
    """An HTTP response whose status is not one the listener counts as success.

    ``status`` is the status code, ``body`` the start of the response body, ``retry_after``
    the seconds of a ``Retry-After`` header (None when absent or unreadable).
    """

    def __init__(
        self,
        message: str,
        listener: str | None = None,
        *,
        status: int,
        body: str = "",
        retry_after: float | None = None,
    ):
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(message, listener)

    @property
    def transient(self) -> bool:  # type: ignore[override]
        return self.status >= 500 or self.status in (408, 429)


class ListenerDisabled(DeliveryError):
    """Not sent: the listener is disabled, because its receiver answered ``410 Gone`` (the
    endpoint was removed; see ``disable_on_gone``). Never retried; ``App.enable(name)`` turns
    the listener back on."""


class TriggerError(DeliveryError):
    """Raised by ``trigger`` with ``raise_errors`` on: lists each listener that failed.

    ``failures`` is a list of ``(listener_name, exception)``; ``notified`` the number of
    listeners that were notified anyway.
    """

    def __init__(self, event_name: str, failures: list[tuple[str, BaseException]], notified: int):
        self.event_name = event_name
        self.failures = failures
        self.notified = notified
        lines = "; ".join(f"{name}: {exc}" for name, exc in failures)
        super().__init__(
            f"event {event_name!r}: {len(failures)} listener(s) failed "
            f"({notified} notified): {lines}"
        )


class OutboxError(EventiscError):
    """The outbox table could not be written or read (PostgreSQL unreachable, no table, a
    transaction already failed). Raised by ``trigger`` for a listener with ``delivery:
    outbox``: the caller's transaction must know its notifications were not written.
    ``table`` names the table."""

    def __init__(self, message: str, table: str | None = None):
        self.table = table
        super().__init__(message)


class SignatureError(EventiscError):
    """A received request did not pass :func:`eventisc.webhooks.verify`: a ``webhook-*``
    header is missing, its timestamp is outside the tolerance, or no signature matches the
    secret(s). Answer such a request with 400 (or 401) and do not act on it."""
