"""The rendered value a listener delivers, and its id."""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ._fork import on_fork

__all__ = ["Notification", "new_id"]

_prefix = ""
_counter = itertools.count()


@on_fork
def _new_prefix() -> None:
    # A forked child would otherwise hand out its parent's next ids.
    global _prefix, _counter
    _prefix = os.urandom(10).hex()
    _counter = itertools.count()


_new_prefix()


def new_id() -> str:
    """A new notification id: 32 lowercase hex digits, unique across processes and machines
    (80 random bits per process, then a counter). About 0.2 µs, against 2 µs for a uuid4."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFF:012x}"


@dataclass(slots=True)
class Notification:
    """What one listener will send for one event, fully rendered.

    ``payload`` holds the kind's fields (an HTTP request's method, url, headers and body; a
    Celery task's name, args, kwargs and queue; a RabbitMQ message's exchange, routing key,
    body and properties). Delivering it needs nothing but the listener's connection settings:
    it can be logged (dry-run), captured, retried or delivered by another thread as it is.

    ``id`` is given when it is rendered and stays the same on every attempt, in the spool and
    in the outbox: receivers deduplicate with it (an HTTP ``Idempotency-Key``, an AMQP
    ``message_id``, a Celery task id). ``ordering_key`` is the rendered ``ordering_key`` of an
    outbox listener that has one, else None. ``trace`` is the W3C trace context
    (``traceparent``, ``tracestate``) of the traced ``trigger`` that rendered it, else None
    (:mod:`eventisc.tracing`): kept in the spool and the outbox, so a later attempt continues
    that trace.
    """

    listener: str
    kind: str
    event_name: str
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    ordering_key: str | None = None
    trace: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the notification (its payload may still hold non-JSON values)."""
        return asdict(self)
