"""Send steps: what a route does with a rendered notification, chosen when the route is built.

Each step is ``send(notification, start, sink)``: ``start`` is when the trigger began
(``time.monotonic()``), ``sink`` the list collecting a :class:`~eventisc.report.Delivery` per
listener (``dispatch``), or None when nobody collects them (``trigger``). It returns True when
the listener counts as notified, False when it does not and nothing failed (it declined), or the
error of a failure already recorded (logged, counted, spooled). An exception it raises is a
failure the route records.

- :func:`direct`: one attempt in the caller's thread, nothing kept (no retries, no spool, no
  hooks): the fast path;
- :class:`Inline`: in the caller's thread, through the route's layers, retrying inline;
- :class:`Enqueue`: to the background workers (written to the spool first when durable);
- :class:`Pipelined`: straight into the listener's asynchronous pipeline, no worker needed;
- :class:`Capture` and :class:`DryRun`: recorded or shown instead of sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from ..errors import StaleConnection
from ..report import Delivery
from .outcomes import RetryAfter
from .recording import logger as recording_logger
from .sender import send_again

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..notification import Notification
    from .background import Background
    from .recording import Recorder
    from .sender import AsyncSender, Sender

__all__ = ["Capture", "DryRun", "Enqueue", "Inline", "Pipelined", "SendStep", "direct"]


#: The signature of a step's ``send``.
SendStep = Callable[["Notification", float, "list[Delivery] | None"], "bool | BaseException"]


def notified(delivery: Delivery) -> bool | BaseException:
    """What a step returns for a delivery whose outcome is final (see the module docstring)."""
    status = delivery.status
    if status == "delivered":
        return True
    if status == "skipped":
        return False
    assert delivery.error is not None
    return delivery.error


def direct(listener: Listener, recorder: Recorder) -> SendStep:
    """The fast path: one attempt in the caller's thread, nothing kept; a failure propagates
    to the route. A closure: this runs for every event of most routes."""
    delivered = recorder.metrics.delivered

    def send(
        notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        try:
            detail = listener.deliver(notification)
        except StaleConnection as exc:  # a kept connection was dead: once more, at once
            detail = send_again(listener, notification, exc)
        if detail is False:
            recorder.skipped(notification, "declined by the listener", sink)
            return False
        latency = monotonic() - start
        delivered(latency)
        if recording_logger.isEnabledFor(logging.DEBUG):
            recorder.log_delivered(notification, detail, latency, 1)
        if sink is not None:
            delivery = Delivery(listener, notification)
            delivery.attempts = 1
            delivery.finish("delivered", None, detail)
            sink.append(delivery)
        return True

    send.attempt = True  # type: ignore[attr-defined]  # the step is the attempt (tracing)
    return send


class _Kept:
    """A step that keeps a :class:`Delivery` for each notification (its future)."""

    __slots__ = ("sender", "priority")

    def __init__(self, sender: Sender, priority: int):
        self.sender = sender
        self.priority = priority

    def _delivery(self, notification: Notification, sink: list[Delivery] | None) -> Delivery:
        delivery = Delivery(self.sender.listener, notification, self.priority)
        delivery.sender = self.sender
        if sink is not None:
            sink.append(delivery)
        return delivery


class Inline(_Kept):
    """Deliver in the caller's thread through the route's layers, waiting inline between
    attempts as the retry policy says."""

    __slots__ = ()

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        delivery = self._delivery(notification, sink)
        attempt = self.sender.attempt
        while type(outcome := attempt(delivery)) is RetryAfter:
            time.sleep(outcome.delay)
        return notified(delivery)


class Enqueue(_Kept):
    """Hand to the background workers; written to the spool first when ``durable``."""

    __slots__ = ("background", "durable")

    def __init__(self, sender: Sender, priority: int, background: Background, durable: bool):
        super().__init__(sender, priority)
        self.background = background
        self.durable = durable

    def _kept(self, delivery: Delivery) -> BaseException | None:
        """Write a durable delivery to the spool as pending: None when done (or not durable),
        else the error, the delivery recorded as failed."""
        if self.durable:
            try:
                self.background.keep_pending(delivery)
            except Exception as exc:
                return self.sender.recorder.give_up(delivery, exc)
        return None

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        delivery = self._delivery(notification, sink)
        error = self._kept(delivery)
        return error if error is not None else self.background.submit(delivery)


class Pipelined(Enqueue):
    """Straight into the listener's asynchronous pipeline: no worker needed to start the first
    attempt (its retries go through the workers)."""

    __slots__ = ()

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        delivery = self._delivery(notification, sink)
        error = self._kept(delivery)
        if error is not None:
            return error
        self.background.track(delivery)
        sender: AsyncSender = self.sender  # type: ignore[assignment]
        sender.start(delivery)
        return True


class Capture:
    """Record the notification with ``capture(listener, notification)`` instead of sending it
    (:func:`eventisc.testing.capture`)."""

    __slots__ = ("listener", "recorder", "capture")

    def __init__(
        self,
        listener: Listener,
        recorder: Recorder,
        capture: Callable[[Listener, Notification], object],
    ):
        self.listener = listener
        self.recorder = recorder
        self.capture = capture

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        self.capture(self.listener, notification)
        self.recorder.skipped(notification, "captured", sink)
        return True


class DryRun:
    """Show what would be sent (``Listener.dry_run``) instead of sending it."""

    __slots__ = ("listener", "recorder")

    def __init__(self, listener: Listener, recorder: Recorder):
        self.listener = listener
        self.recorder = recorder

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        shown: Any = self.listener.dry_run(notification)
        self.recorder.skipped(notification, "dry-run", sink)
        return bool(shown)
