"""Settings: the value classes of a config, with their JSON Schemas, and the checks they share.

A config file is checked against the schemas; the same rules hold for values given from Python
(``RetryPolicy(max_backoff=...)``, ``App(heartbeat=...)``, a listener's ``timeout``), so both
ways in fail the same way, at load, with a :class:`~eventisc.errors.ConfigError` naming the
setting. A duration is a finite number of seconds: ``nan`` passes every comparison and would
never time out, and ``inf`` or a huge number overflows the timed waits of threads and sockets;
eventisc never waits forever.

- :class:`RetryPolicy` (``retry:``): which failures are worth another attempt, and how long to
  wait first. One policy value serves every kind. ``retry_on`` names classes of failure:

  ==============  =================================================================
  ``connect``     the receiver or broker could not be reached, or the link broke
  ``timeout``     no answer in time
  ``5xx``         an HTTP 5xx status
  ``4xx``         an HTTP 4xx status (``429`` and single codes can be named alone)
  ``429``, ...    one HTTP status code
  ``rejected``    a broker refusal (AMQP nack, unroutable, access refused)
  ``error``       any other failure of a delivery (an exception of a custom kind)
  ==============  =================================================================

  Template and encoding errors are never retried: the same event fails the same way.
- :class:`DispatcherSettings` (``dispatcher:``): the background queue and its workers.
- :class:`OutboxSettings` (``outbox:``): the PostgreSQL outbox table and its relays.
- :class:`CeleryDeliverySettings` (``celery_delivery:``): the Celery app and queue that
  ``delivery: celery`` hands notifications to.
- :class:`Plan`: how one listener's notifications are delivered, resolved from the listener's
  own options and the app's.
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from .errors import (
    ConfigError,
    ConnectError,
    DeliveryTimeout,
    HTTPStatusError,
    ListenerDisabled,
    Rejected,
    TemplateError,
)
from .masking import mask_url

__all__ = [
    "DEFAULT_BACKGROUND",
    "DEFAULT_SYNC",
    "DELIVERY_MODES",
    "CELERY_DELIVERY_SCHEMA",
    "DISPATCHER_SCHEMA",
    "LONGEST",
    "ON_FULL",
    "OUTBOX_SCHEMA",
    "RETRY_SCHEMA",
    "CeleryDeliverySettings",
    "DispatcherSettings",
    "OutboxSettings",
    "Plan",
    "RetryPolicy",
    "build",
    "check_count",
    "check_mode",
    "check_seconds",
    "count_option",
    "env_flag",
    "failure_class",
    "seconds_option",
]

#: The longest wait a duration may ask for: what Python's timed waits accept (~292 years).
LONGEST = threading.TIMEOUT_MAX

#: How notifications are delivered: in ``trigger`` (sync), by worker threads (background), or
#: by relay processes from a PostgreSQL table written in the caller's transaction (outbox), or
#: by Celery workers the notification is handed to as a task (celery).
DELIVERY_MODES = ("sync", "background", "outbox", "celery")


def check_seconds(name: str, value: Any, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """``value`` as seconds: a finite number > 0 (>= 0 with ``zero``) and at most ``maximum``;
    else a :class:`ConfigError` at ``name`` (``ConfigError.within`` puts it under its parent)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
        and value <= maximum
    )
    if not ok:
        bound = ">= 0" if zero else "above 0"
        raise ConfigError(
            f"must be a finite number of seconds {bound} (at most {maximum:.0f}), not {value!r}",
            name,
        )
    return float(value)


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as a whole number >= ``minimum`` (a bool, a float or a numeric string is not
    one); else a :class:`ConfigError` at ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer of at least {minimum}, not {value!r}", name)
    return value


def seconds_option(value: Any, path: str, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """:func:`check_seconds` for an option at ``path`` (``requests_kwargs.timeout``)."""
    try:
        return check_seconds(path.rsplit(".", 1)[-1], value, zero=zero, maximum=maximum)
    except ConfigError as exc:
        raise ConfigError(exc.message, path) from None


def count_option(value: Any, path: str, minimum: int = 0) -> int:
    """:func:`check_count` for an option at ``path``."""
    try:
        return check_count(path.rsplit(".", 1)[-1], value, minimum)
    except ConfigError as exc:
        raise ConfigError(exc.message, path) from None


#: What an environment variable may say to mean yes (any case).
_YES = frozenset({"y", "yes", "true", "1", "on"})


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` says yes (y/yes/true/1/on, any case)."""
    return os.environ.get(name, "").strip().lower() in _YES


def check_mode(value: Any, path: str = "delivery") -> str:
    """``value`` as a delivery mode (:data:`DELIVERY_MODES`); else a ConfigError at ``path``."""
    if value not in DELIVERY_MODES:
        raise ConfigError(f"must be {', '.join(DELIVERY_MODES)}, not {value!r}", path)
    return str(value)


S = TypeVar("S")


def build(cls: Callable[..., S], options: Mapping[str, Any], path: str, what: str = "") -> S:
    """A settings value ``cls(**options)`` from its config mapping at ``path``: its own
    ConfigError put under ``path``, an unknown or ill-typed option (TypeError, ValueError) a
    ConfigError at ``path`` (its message after ``what``)."""
    try:
        return cls(**options)
    except ConfigError as exc:
        raise exc.within(path) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}{exc}", path) from None


# -- retries ----------------------------------------------------------------------------------

_NAMED = frozenset({"connect", "timeout", "5xx", "4xx", "rejected", "error"})


def failure_class(exc: BaseException) -> str | None:
    """The ``retry_on`` name of a failure; None for one never retried (a template error, a
    disabled listener)."""
    if isinstance(exc, (TemplateError, ListenerDisabled)):
        return None
    if isinstance(exc, HTTPStatusError):
        return str(exc.status)
    if isinstance(exc, (ConnectError, ConnectionError)):
        return "connect"
    if isinstance(exc, (DeliveryTimeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, Rejected):
        return "rejected"
    return "error"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How many times to try a delivery and how long to wait between attempts.

    Attempt ``n`` failing waits ``backoff_factor * 2 ** (n - 1)`` seconds, capped at
    ``max_backoff`` and spread by ``±jitter`` (a fraction) before attempt ``n + 1``. An HTTP
    ``Retry-After`` replaces that wait, capped at ``max_backoff`` too. ``max_attempts`` counts
    the first attempt: 1 means never retry.
    """

    max_attempts: int = 3
    backoff_factor: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.1
    retry_on: frozenset[str] = field(default=frozenset({"connect", "timeout", "5xx", "429"}))

    def __post_init__(self) -> None:
        check_count("max_attempts", self.max_attempts, 1)
        for name in ("backoff_factor", "max_backoff"):
            check_seconds(name, getattr(self, name), zero=True)
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 1):
            raise ConfigError(f"must be between 0 and 1, not {self.jitter!r}", "jitter")
        names = frozenset(str(n).lower() for n in self.retry_on)
        for name in names:
            if name not in _NAMED and not (name.isdigit() and 100 <= int(name) <= 599):
                raise ConfigError(
                    f"unknown failure {name!r}; use {', '.join(sorted(_NAMED))} or HTTP status "
                    "codes",
                    "retry_on",
                )
        object.__setattr__(self, "retry_on", names)

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | RetryPolicy, path: str = "retry"
    ) -> RetryPolicy:
        """Build a policy from its config mapping (or return a policy as it is)."""
        if isinstance(value, RetryPolicy):
            return value
        options = dict(value)
        if "retry_on" in options:
            options["retry_on"] = frozenset(str(v) for v in options["retry_on"])
        return build(cls, options, path)

    def retries(self, exc: BaseException) -> bool:
        """Whether this failure is worth another attempt under this policy."""
        name = failure_class(exc)
        if name is None:
            return False
        if name in self.retry_on:
            return True
        return name.isdigit() and f"{name[0]}xx" in self.retry_on

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) failing with ``exc`` gets another one."""
        return attempt < self.max_attempts and self.retries(exc)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed with ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_backoff))
        wait = min(self.backoff_factor * 2 ** (attempt - 1), self.max_backoff)
        if self.jitter:
            wait *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, wait)

    def to_config(self) -> dict[str, Any]:
        """The policy as config keys (for ``eventisc check``)."""
        return {
            "max_attempts": self.max_attempts,
            "backoff_factor": self.backoff_factor,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "retry_on": sorted(self.retry_on),
        }


#: The default of synchronous delivery: one attempt, as in event-isc (retrying inline would
#: hold the caller; configure ``retry`` to opt in).
DEFAULT_SYNC = RetryPolicy(max_attempts=1)
#: The default of background delivery: five attempts over about eight seconds.
DEFAULT_BACKGROUND = RetryPolicy(max_attempts=5)

#: JSON Schema of a ``retry`` mapping.
RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "The retry policy of every listener that has no `retry` of its own (also "
    "`eventisc.RetryPolicy(...)` from Python). A `retry` mapping replaces the default whole: "
    "the keys it leaves out take the defaults of the `retry` table, `max_attempts: 3` "
    "included. Default: one attempt in sync mode (as in event-isc: retrying inline holds the "
    "caller), five in background and outbox modes.",
    "properties": {
        "max_attempts": {
            "type": "integer",
            "minimum": 1,
            "default": 3,
            "description": "Attempts in all, the first included; 1 never retries. (Without any "
            "`retry` mapping: 1 in sync mode, 5 in background and outbox modes.)",
        },
        "backoff_factor": {
            "type": "number",
            "minimum": 0,
            "default": 0.5,
            "description": "After attempt n fails, wait `backoff_factor * 2 ** (n - 1)` "
            "seconds before the next one.",
        },
        "max_backoff": {
            "type": "number",
            "minimum": 0,
            "default": 30,
            "description": "The longest wait in seconds; it also caps an HTTP `Retry-After`, "
            "which replaces the backoff when a receiver sends one.",
        },
        "jitter": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.1,
            "description": "Spread each wait by this fraction either way (0.1: ±10%), so many "
            "clients do not retry in step.",
        },
        "retry_on": {
            "type": "array",
            "items": {"type": ["string", "integer"]},
            "default": ["connect", "timeout", "5xx", "429"],
            "description": "The failures retried: `connect` (cannot connect, connection lost), "
            "`timeout`, `5xx`, `4xx`, single HTTP codes (`429`, `409`), `rejected` (AMQP nack, "
            "unroutable message), `error` (any other exception, e.g. of a custom kind). "
            "Template and encoding errors are never retried.",
        },
    },
}


# -- the background dispatcher ------------------------------------------------------------------

#: What to do when the queue is full.
ON_FULL = ("block", "drop", "spool")


@dataclass(frozen=True, kw_only=True)
class DispatcherSettings:
    """Settings of the background dispatcher (the ``dispatcher:`` config key).

    ``queue_size`` bounds the deliveries held in memory: queued, waiting for a retry or being
    delivered. ``on_full`` None means: ``spool`` when the app has a spool, else ``block``. ``block``
    waits up to ``block_timeout`` seconds for room, then spools (or drops, without a spool).
    ``shutdown_timeout`` bounds how long ``App.close()`` waits for the queue to drain.
    ``breaker_failures`` attempts in a row that cannot reach a listener's receiver open its
    circuit breaker for ``breaker_reset`` seconds (:mod:`eventisc.delivery.breaker`); 0 turns
    it off.
    """

    min_workers: int = 1
    max_workers: int = 8
    queue_size: int = 10_000
    monitor_interval: float = 0.1
    idle_timeout: float = 5.0
    thread_name_prefix: str = "eventisc-worker"
    on_full: str | None = None
    block_timeout: float = 1.0
    shutdown_timeout: float = 10.0
    breaker_failures: int = 5
    breaker_reset: float = 1.0

    def __post_init__(self) -> None:
        check_count("min_workers", self.min_workers)
        check_count("max_workers", self.max_workers, 1)
        if self.min_workers > self.max_workers:
            raise ConfigError(
                f"must not be more than max_workers ({self.max_workers}), not {self.min_workers}",
                "min_workers",
            )
        check_count("queue_size", self.queue_size, 1)
        check_count("breaker_failures", self.breaker_failures)
        for name in ("monitor_interval", "idle_timeout"):
            check_seconds(name, getattr(self, name))
        for name in ("block_timeout", "shutdown_timeout", "breaker_reset"):
            check_seconds(name, getattr(self, name), zero=True)
        if self.on_full is not None and self.on_full not in ON_FULL:
            raise ConfigError(
                f"must be one of {', '.join(ON_FULL)}, not {self.on_full!r}", "on_full"
            )

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | DispatcherSettings | None, path: str = "dispatcher"
    ) -> DispatcherSettings:
        if isinstance(value, DispatcherSettings):
            return value
        return build(cls, dict(value or {}), path)


#: JSON Schema of the ``dispatcher`` mapping.
DISPATCHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "The background queue and its worker threads (also "
    "`eventisc.DispatcherSettings(...)` from Python): workers, queue size, `on_full`, "
    "timeouts, circuit breakers.",
    "properties": {
        "min_workers": {
            "type": "integer",
            "minimum": 0,
            "default": 1,
            "description": "Worker threads kept while idle; the pool scales between "
            "`min_workers` and `max_workers` with the load.",
        },
        "max_workers": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "Worker threads at most.",
        },
        "queue_size": {
            "type": "integer",
            "minimum": 1,
            "default": 10000,
            "description": "Notifications held in memory at most: queued, waiting for a retry "
            "or being delivered. Memory stays bounded by it.",
        },
        "monitor_interval": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 0.1,
            "description": "Seconds between checks of the queue depth against the idle "
            "workers; more workers start while deliveries wait and no worker is idle.",
        },
        "idle_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "Seconds a worker may stay idle before it ends (down to `min_workers`).",
        },
        "thread_name_prefix": {
            "type": "string",
            "minLength": 1,
            "default": "eventisc-worker",
            "description": "Worker threads are named `<prefix>-1`, `<prefix>-2`, ...; the "
            "monitor thread `<prefix>-monitor`.",
        },
        "on_full": {
            "enum": list(ON_FULL),
            "description": "What a full queue does with a new notification: `block` waits up "
            "to `block_timeout`, then spools it (or drops it, without a spool); `drop` drops it "
            "at once; `spool` writes it to the spool at once. Every refused notification is "
            "counted (`dropped`, `spooled`) and logged once per second with the count. "
            "Default: `spool` when the app has a spool, else `block`.",
        },
        "block_timeout": {
            "type": "number",
            "minimum": 0,
            "default": 1,
            "description": "Seconds `trigger` may wait for room with `on_full: block`.",
        },
        "shutdown_timeout": {
            "type": "number",
            "minimum": 0,
            "default": 10,
            "description": "Seconds `close()` waits for the queue to drain; what is left is "
            "kept in the spool as pending (or logged as lost, without a spool).",
        },
        "breaker_failures": {
            "type": "integer",
            "minimum": 0,
            "default": 5,
            "description": "Attempts in a row that cannot reach a listener's receiver "
            "(`ConnectError`, `DeliveryTimeout`) open its circuit breaker; 0 turns breakers off.",
        },
        "breaker_reset": {
            "type": "number",
            "minimum": 0,
            "default": 1,
            "description": "Seconds an open breaker holds that listener's attempts back before "
            "one goes through as a probe.",
        },
    },
}
assert set(DISPATCHER_SCHEMA["properties"]) == {f.name for f in fields(DispatcherSettings)}


# -- a listener's plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How one listener's notifications are delivered: in the background or not, with which
    retry policy, written to the spool before ``trigger`` returns or not, in which queue order,
    or written to the outbox table for a relay to deliver, or handed to Celery workers.
    Resolved once, from the listener's own options over the app's (see
    :func:`eventisc.config.resolve_plan`)."""

    background: bool
    policy: RetryPolicy
    durable: bool = False
    priority: int = 0
    outbox: bool = False
    celery: bool = False


# -- the outbox ---------------------------------------------------------------------------------

#: A table name: an SQL identifier, optionally schema-qualified, written as PostgreSQL folds it.
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?")


@dataclass(frozen=True, kw_only=True)
class OutboxSettings:
    """The PostgreSQL outbox (the ``outbox:`` config key): where notifications of listeners
    with ``delivery: outbox`` are written, and how relays claim and deliver them."""

    url: str = field(repr=False)
    table: str = "eventisc_outbox"
    batch: int = 100
    lease: float = 30.0
    poll: float = 5.0
    shutdown_timeout: float = 10.0
    retain_delivered: float = 0.0
    concurrency: int = 8
    pool_size: int = 4
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise ConfigError(
                "must be a PostgreSQL URL or conninfo string (postgresql://user@host:5432/db)",
                "url",
            )
        if not isinstance(self.table, str) or not _TABLE.fullmatch(self.table):
            raise ConfigError(
                "must be a lowercase SQL name (letters, digits, _), optionally schema.table, "
                f"not {self.table!r}",
                "table",
            )
        for name in ("batch", "concurrency", "pool_size"):
            check_count(name, getattr(self, name), 1)
        for name in ("lease", "poll", "connect_timeout"):
            check_seconds(name, getattr(self, name))
        for name in ("shutdown_timeout", "retain_delivered"):
            check_seconds(name, getattr(self, name), zero=True)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "url"
        )
        return f"OutboxSettings(url={mask_url(self.url)!r}, {shown})"

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel relays wait on: the table's name."""
        return self.table.replace(".", "_")

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | OutboxSettings | str, path: str = "outbox"
    ) -> OutboxSettings:
        """Build the settings from the ``outbox`` mapping (or a URL alone)."""
        if isinstance(value, OutboxSettings):
            return value
        options = {"url": value} if isinstance(value, str) else dict(value)
        return build(cls, options, path, "bad outbox options: ")


#: JSON Schema of the ``outbox`` mapping.
OUTBOX_SCHEMA: dict[str, Any] = {
    "type": ["object", "string"],
    "additionalProperties": False,
    "required": ["url"],
    "description": "The PostgreSQL outbox (`pip install 'eventisc[postgres]'`): listeners with "
    "`delivery: outbox` write their notifications to this table, in the caller's transaction "
    "when `trigger(..., connection=conn)` is given, and `eventisc relay` processes deliver "
    "them. A string is the `url` alone.",
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "The database: a URL (`postgresql://user@host:5432/db`) or a "
            "psycopg conninfo string. Its password is masked in every message.",
        },
        "table": {
            "type": "string",
            "pattern": _TABLE.pattern,
            "default": "eventisc_outbox",
            "description": "The table (`schema.table` allowed); `eventisc outbox sql` prints "
            "its DDL, `eventisc outbox init` creates it. Relays wait on the LISTEN channel of "
            "the same name (a dot becomes `_`).",
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "default": 100,
            "description": "Rows a relay claims at once.",
        },
        "lease": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Seconds a claimed row stays invisible to other relays; a relay "
            "that dies leaves its rows to others when their lease runs out. Longer than a "
            "listener's slowest delivery.",
        },
        "poll": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "Seconds between polls when no NOTIFY arrives (due retries, "
            "expired leases).",
        },
        "shutdown_timeout": {
            "type": "number",
            "minimum": 0,
            "default": 10,
            "description": "SIGTERM or SIGINT: seconds a relay finishes what is in flight; "
            "the leases of the rest are given back.",
        },
        "retain_delivered": {
            "type": "number",
            "minimum": 0,
            "default": 0,
            "description": "Seconds delivered rows are kept (state `delivered`) before a "
            "relay deletes them; 0 deletes them at once.",
        },
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "Deliveries a relay runs at once (threads); "
            "`eventisc relay --concurrency N` overrides it.",
        },
        "pool_size": {
            "type": "integer",
            "minimum": 1,
            "default": 4,
            "description": "Connections at most in the pool eventisc writes with when "
            "`trigger` is given no `connection`.",
        },
        "connect_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "Seconds to connect to PostgreSQL.",
        },
    },
}
assert set(OUTBOX_SCHEMA["properties"]) == {f.name for f in fields(OutboxSettings)}


# -- delivery on Celery workers -----------------------------------------------------------------

#: A Celery queue name: what AMQP and Redis accept, without spaces.
_QUEUE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


@dataclass(frozen=True, kw_only=True)
class CeleryDeliverySettings:
    """Delivery on Celery workers (the ``celery_delivery:`` config key): the Celery app that
    listeners with ``delivery: celery`` send their ``eventisc.deliver`` tasks through (the
    service's own, ``app``, or eventisc's for ``broker_url``), and the queue the workers
    consume."""

    app: str | None = None
    broker_url: str | None = field(default=None, repr=False)
    queue: str = "eventisc"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if (self.app is None) == (self.broker_url is None):
            raise ConfigError(
                "give an `app` (your Celery app, `proj.celery:app`) or a `broker_url` "
                "(eventisc's own Celery app), one of the two",
                "app" if self.app is not None else "",
            )
        for name in ("app", "broker_url"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"must be a non-empty string, not {value!r}", name)
        if not isinstance(self.queue, str) or not _QUEUE.fullmatch(self.queue):
            raise ConfigError(
                f"must be a queue name (letters, digits, _.:-), not {self.queue!r}", "queue"
            )
        check_seconds("timeout", self.timeout)

    def __repr__(self) -> str:
        url = None if self.broker_url is None else mask_url(self.broker_url)
        return (
            f"CeleryDeliverySettings(app={self.app!r}, broker_url={url!r}, "
            f"queue={self.queue!r}, timeout={self.timeout!r})"
        )

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | CeleryDeliverySettings, path: str = "celery_delivery"
    ) -> CeleryDeliverySettings:
        """Build the settings from the ``celery_delivery`` mapping."""
        if isinstance(value, CeleryDeliverySettings):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a mapping, not {type(value).__name__}", path)
        return build(cls, dict(value), path, "bad celery_delivery options: ")


#: JSON Schema of the ``celery_delivery`` mapping.
CELERY_DELIVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Delivery on Celery workers (`pip install 'eventisc[celery]'`): listeners "
    "with `delivery: celery` render, then send one `eventisc.deliver` task per notification "
    "to `queue`; workers (`celery -A eventisc.worker worker -Q eventisc`) deliver it "
    "([Delivery on Celery workers](celery-delivery.md)). Give `app` or `broker_url`.",
    "properties": {
        "app": {
            "type": "string",
            "minLength": 1,
            "description": "Your Celery app, as `module:attribute` (`proj.celery:app`): the "
            "tasks go through its broker connection and settings.",
        },
        "broker_url": {
            "type": "string",
            "minLength": 1,
            "description": "A broker URL (`amqp://...`, `redis://...`) for a Celery app of "
            "eventisc's own, with publisher confirms on RabbitMQ. Its password is masked in "
            "every message.",
        },
        "queue": {
            "type": "string",
            "pattern": _QUEUE.pattern,
            "default": "eventisc",
            "description": "The queue the tasks go to, the one the workers consume (`-Q`).",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds one hand-off to the broker may take (its confirm "
            "included) before it counts as the listener's failure.",
        },
    },
}
assert set(CELERY_DELIVERY_SCHEMA["properties"]) == {f.name for f in fields(CeleryDeliverySettings)}
