"""Recording final outcomes: on the delivery, in the metrics, in the log, to the hooks.

Every way a notification can end goes through a route's :class:`Recorder`: delivered or
declined by the listener, given up on (failed, spooled), refused by a full queue (dropped,
spooled), failed before any attempt (its filter or template), left at shutdown. A final failure
is logged, never silently, in one record saying where the notification went (:func:`fate`):
WARNING when it is kept (dead in the spool or the outbox), ERROR when it is dropped. The
traceback comes with it only for an unexpected error, or when DEBUG is on: a
:class:`~eventisc.errors.DeliveryError` (an HTTP status, a timeout, a refused connection)
says all there is to say in its message. Then the local variables of the frames its traceback
holds are released (:func:`release_frames`), so a failed delivery that is kept (a report, a
dead letter) does not keep the drivers' sockets and buffers alive.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from ..errors import DeliveryError, OutboxError
from ..logs import log_extra
from ..report import Delivery
from .outcomes import FINAL, Failure, Sent
from .sender import Layer, Result, name_listener

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..metrics import ListenerMetrics
    from ..notification import Notification

__all__ = [
    "HOOK_EVENTS",
    "Hooks",
    "RecordLayer",
    "Recorder",
    "fate",
    "log_failure",
    "release_frames",
]

logger = logging.getLogger(__name__)

#: The final statuses a hook can be added for (``App.on``).
HOOK_EVENTS = ("delivered", "failed", "spooled", "dropped")


def release_frames(error: BaseException) -> None:
    """Clear the local variables of the finished frames in ``error``'s tracebacks (its causes
    and contexts included), keeping the tracebacks printable.

    A driver's error holds the frames it was raised through, and their locals (sockets,
    requests, buffers, often the error itself: a reference cycle, as in urllib3). A delivery
    that ends in failure keeps its error, so without this every failed delivery would keep all
    of that, and what the cycles hold is freed only by a garbage collection, a full one for a
    delivery that lived long enough to reach the oldest generation.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        todo += (exc.__cause__, exc.__context__)


def fate(delivery: Delivery | None, error: BaseException) -> str | None:
    """Where a notification given up on went, as the log says it: ``dead in the spool as
    #12``, ``dead in the outbox as row 34``, ``dropped``; None when ``error`` says it itself
    (the outbox could not be written: the caller's transaction got the error)."""
    if delivery is not None and delivery.spool_id is not None:
        return f"dead in the spool as #{delivery.spool_id}"
    row = getattr(delivery, "row", None)  # a relay's delivery: its row is dead now
    if row is not None:
        return f"dead in the outbox as row {row.seq}"
    if isinstance(error, OutboxError):
        return None
    return "dropped"


def _reason(listener: Listener, exc: BaseException) -> str:
    """``ConnectError: cannot connect ...``: the error without the listener's name, which the
    record already starts with."""
    text = str(exc)
    for start in (f"listener {listener.name!r}: ", f"listener {listener.name!r}, "):
        if text.startswith(start):
            text = text[len(start) :]
    return f"{type(exc).__name__}: {text}"


def log_failure(
    listener: Listener,
    event_name: str,
    exc: BaseException,
    attempts: int = 1,
    outcome: str = "failed",
    latency: float | None = None,
    where: str | None = "dropped",
) -> None:
    """Log a listener's final failure in one record (never silent): WARNING when the
    notification is kept somewhere (``where``: see :func:`fate`), else ERROR; with the
    traceback only for an unexpected error (not a DeliveryError) or at DEBUG."""
    name_listener(exc, listener)
    kept = where is not None and where != "dropped"
    traceback_too = not isinstance(exc, DeliveryError) or logger.isEnabledFor(logging.DEBUG)
    logger.log(
        logging.WARNING if kept else logging.ERROR,
        "listener %r failed for event %r%s: %s%s",
        listener.name,
        event_name,
        f" after {attempts} attempts" if attempts > 1 else "",
        _reason(listener, exc),
        f"; {where}" if where else "",
        exc_info=exc if traceback_too else None,
        extra=log_extra(event_name, listener.name, attempts, outcome, latency),
    )


class Hooks:
    """An app's callbacks by final status (``App.on``): shared by its routes."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[Delivery], object]]] = {}
        #: ``disabled`` callbacks: they get the listener's name and the error (410 Gone).
        self.disabled: list[Callable[[str, BaseException], object]] = []

    def add(self, status: str, callback: Callable[[Delivery], object]) -> None:
        self._callbacks.setdefault(status, []).append(callback)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def run_disabled(self, name: str, error: BaseException) -> None:
        """Run the ``disabled`` callbacks: listener ``name`` was disabled with ``error``."""
        for hook in self.disabled:
            try:
                hook(name, error)
            except Exception:  # a hook never breaks delivery, nor the other hooks
                logger.exception("a 'disabled' hook failed for listener %r", name)

    def run(self, status: str, delivery: Delivery) -> None:
        for hook in self._callbacks.get(status, ()):
            try:
                hook(delivery)
            except Exception:  # a hook never breaks delivery, nor the other hooks
                logger.exception("a %r hook failed for listener %r", status, delivery.name)


class Recorder:
    """Final outcomes of one route's deliveries (see the module docstring)."""

    __slots__ = ("listener", "metrics", "hooks")

    def __init__(self, listener: Listener, metrics: ListenerMetrics, hooks: Hooks):
        self.listener = listener
        self.metrics = metrics
        self.hooks = hooks

    def finish(
        self,
        delivery: Delivery,
        status: str,
        error: BaseException | None = None,
        detail: Any = None,
    ) -> None:
        """Record a delivery's final outcome: on the delivery, in the metrics, to the hooks."""
        delivery.finish(status, error, detail)
        self.metrics.finished(status, delivery.latency)
        if status == "delivered" and logger.isEnabledFor(logging.DEBUG):
            self.log_delivered(delivery.notification, detail, delivery.latency, delivery.attempts)
        self.hooks.run(status, delivery)
        if error is not None:
            release_frames(error)

    def give_up(
        self, delivery: Delivery, error: BaseException, status: str = "failed"
    ) -> BaseException:
        """A final failure: logged (saying where the notification went), then recorded;
        returns it."""
        notification = delivery.notification
        event_name = notification.event_name if notification is not None else "?"
        latency = monotonic() - delivery.created
        where = fate(delivery, error)
        log_failure(self.listener, event_name, error, delivery.attempts, status, latency, where)
        self.finish(delivery, status, error)
        return error

    def failed_early(
        self,
        error: BaseException,
        event_name: str,
        notification: Notification | None,
        start: float,
        sink: list[Delivery] | None,
    ) -> BaseException:
        """A failure before the send step kept a delivery of its own: the filter, the template,
        or a direct attempt. Returns ``error``."""
        attempts = 1 if notification is not None else 0
        latency = monotonic() - start
        log_failure(
            self.listener, event_name, error, attempts, latency=latency, where=fate(None, error)
        )
        delivery = Delivery(self.listener, notification)
        delivery.attempts = attempts
        if sink is not None:
            sink.append(delivery)
        self.finish(delivery, "failed", error)
        return error

    def skipped(
        self, notification: Notification | None, detail: str, sink: list[Delivery] | None
    ) -> None:
        """A notification not sent on purpose (filtered out, declined, captured, dry-run):
        reported to ``sink`` if there is one."""
        if sink is not None:
            delivery = Delivery(self.listener, notification)
            delivery.finish("skipped", None, detail)
            sink.append(delivery)

    def log_delivered(
        self, notification: Notification | None, detail: Any, latency: float | None, attempts: int
    ) -> None:
        event_name = notification.event_name if notification is not None else "?"
        name = self.listener.name
        logger.debug(
            "listener %r delivered event %r: %s",
            *(name, event_name, detail),
            extra=log_extra(event_name, name, attempts, "delivered", latency),
        )


class RecordLayer(Layer):
    """The outermost layer: a final result is recorded, and the scheduler told it is final."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def after(self, delivery: Delivery, result: Result) -> Result:
        kind = type(result)
        if kind is Sent:
            detail = result.detail  # type: ignore[union-attr]
            if detail is False:
                self.recorder.finish(delivery, "skipped", detail="declined by the listener")
            else:
                self.recorder.finish(delivery, "delivered", detail=detail)
            return FINAL
        if kind is Failure:
            failure: Failure = result  # type: ignore[assignment]
            self.recorder.give_up(delivery, failure.error, failure.status)
            return FINAL
        return result
