"""Outcomes: one :class:`Delivery` per listener and event, grouped in a :class:`Report`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._fork import on_fork

if TYPE_CHECKING:
    from .listeners.base import Listener
    from .notification import Notification

__all__ = ["Delivery", "Report"]

#: Statuses a delivery ends in. ``pending`` is the only one that is not final.
FINAL = frozenset({"delivered", "failed", "dropped", "spooled", "skipped", "outboxed"})

# One condition for every delivery: finishing one is rare next to creating one, and waiting
# on a single condition costs nothing per delivery until somebody waits.
_finished = threading.Condition()


@on_fork
def _new_condition() -> None:
    # A worker thread of the parent may have held it at fork time.
    global _finished
    _finished = threading.Condition()


class Delivery:
    """One listener's delivery of one event; in background mode, also a future.

    ``status`` is ``pending`` until it becomes ``delivered``, ``failed`` (``error`` says why),
    ``dropped`` (the background queue was full), ``spooled`` (written to the spool: retries
    exhausted, queue full or shut down), ``outboxed`` (written to the outbox table: a relay
    delivers it once the transaction commits; or handed to the Celery workers, ``delivery:
    celery``) or ``skipped`` (the filter rejected the event or
    the listener declined it). ``attempts`` counts delivery attempts; ``latency`` is the seconds
    from trigger to the final outcome.
    """

    __slots__ = (
        "listener",
        "notification",
        "status",
        "error",
        "detail",
        "attempts",
        "created",
        "finished",
        "spool_id",
        "priority",
        "queued",
        "sender",
    )

    def __init__(
        self,
        listener: Listener,
        notification: Notification | None,
        priority: int = 0,
        spool_id: int | None = None,
    ):
        self.listener = listener
        self.notification = notification
        self.status = "pending"
        self.error: BaseException | None = None
        self.detail: Any = None
        self.attempts = 0
        self.created = time.monotonic()
        self.finished: float | None = None
        self.spool_id = spool_id
        self.priority = priority
        #: When it last entered the background queue (time.monotonic()).
        self.queued = 0.0
        #: What makes its attempts (``sender.attempt(delivery)``): its route's, when it has one.
        self.sender: Any = None

    @property
    def name(self) -> str:
        """The listener's name."""
        return self.listener.name

    @property
    def done(self) -> bool:
        return self.status != "pending"

    @property
    def ok(self) -> bool:
        """Delivered, written to the outbox, or skipped on purpose."""
        return self.status in ("delivered", "outboxed", "skipped")

    @property
    def latency(self) -> float | None:
        """Seconds from the trigger to the final outcome (None while pending)."""
        return None if self.finished is None else self.finished - self.created

    def finish(self, status: str, error: BaseException | None = None, detail: Any = None) -> None:
        """Record the final outcome and wake whoever waits for it."""
        with _finished:
            self.error = error
            self.detail = detail
            self.finished = time.monotonic()
            self.status = status
            _finished.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the outcome is final; return whether it is."""
        if self.status != "pending":
            return True
        with _finished:
            return _finished.wait_for(lambda: self.status != "pending", timeout)

    def __repr__(self) -> str:
        error = f" error={self.error!s}" if self.error is not None else ""
        return f"<Delivery {self.name!r} {self.status} attempts={self.attempts}{error}>"


class Report:
    """What ``App.dispatch`` did with one event: a :class:`Delivery` per matching listener."""

    def __init__(self, event_name: str, deliveries: list[Delivery]):
        self.event_name = event_name
        self.deliveries = deliveries

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.deliveries)

    def __len__(self) -> int:
        return len(self.deliveries)

    def __getitem__(self, name: str) -> Delivery:
        """The delivery of the listener called ``name``."""
        for delivery in self.deliveries:
            if delivery.name == name:
                return delivery
        raise KeyError(name)

    @property
    def done(self) -> bool:
        return all(d.done for d in self.deliveries)

    @property
    def ok(self) -> bool:
        """Every delivery is final and delivered (or outboxed, or skipped)."""
        return all(d.ok for d in self.deliveries)

    def count(self, status: str) -> int:
        return sum(1 for d in self.deliveries if d.status == status)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every delivery is final (at most ``timeout`` seconds in all)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for delivery in self.deliveries:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not delivery.wait(left):
                return False
        return True

    def __repr__(self) -> str:
        parts = ", ".join(f"{d.name}={d.status}" for d in self.deliveries)
        return f"<Report {self.event_name!r}: {parts}>"
