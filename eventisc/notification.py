"""The rendered value a listener delivers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Notification"]


@dataclass(slots=True)
class Notification:
    """What one listener will send for one event, fully rendered.

    ``payload`` holds the kind's fields (an HTTP request's method, url, headers and body; a
    Celery task's name, args, kwargs and queue; a RabbitMQ message's exchange, routing key,
    body and properties). Delivering it needs nothing but the listener's connection settings:
    it can be logged (dry-run), captured, retried or delivered by another thread as it is.
    """

    listener: str
    kind: str
    event_name: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the notification (its payload may still hold non-JSON values)."""
        return asdict(self)
