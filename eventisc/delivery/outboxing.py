"""The outbox send step: a notification becomes a row of the outbox table.

:class:`ToOutbox` encodes the notification and adds it to the trigger's
:class:`OutboxBatch`; once every route of the event has run, the app writes the batch in one
statement (:class:`~eventisc.outbox.writer.OutboxWriter`) and records each delivery as
``outboxed``, or, when the write fails, as failed, and raises the
:class:`~eventisc.errors.OutboxError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._spool_codec import encode_payload
from ..report import Delivery

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..notification import Notification
    from ..outbox.writer import OutboxWriter, Row
    from .recording import Recorder

__all__ = ["OutboxBatch", "ToOutbox"]


class OutboxBatch(list["Delivery"]):
    """The deliveries of one trigger (what ``dispatch`` reports) and the outbox rows among
    them, written together once the trigger's routes have run."""

    __slots__ = ("rows", "kept")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.kept: list[tuple[Delivery, Recorder]] = []

    def write(self, writer: OutboxWriter, connection: Any) -> None:
        """Write the rows (if any) and record the outcome of each; raises OutboxError."""
        if not self.rows:
            return
        try:
            writer.write(self.rows, connection)
        except Exception as exc:
            for delivery, recorder in self.kept:
                recorder.give_up(delivery, exc)
            raise
        for delivery, recorder in self.kept:
            recorder.finish(delivery, "outboxed")


class ToOutbox:
    """Add the notification to the trigger's :class:`OutboxBatch` (see the module docstring).
    A payload that cannot be stored (an object JSON cannot hold) is this listener's failure."""

    __slots__ = ("listener", "recorder")

    def __init__(self, listener: Listener, recorder: Recorder):
        self.listener = listener
        self.recorder = recorder

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        if not isinstance(sink, OutboxBatch):
            raise TypeError("an outbox route is triggered through its app")
        text = encode_payload(notification.payload, self.listener.name, notification.trace)
        delivery = Delivery(self.listener, notification)
        delivery.attempts = 0
        sink.append(delivery)
        sink.rows.append(
            (
                notification.id,
                notification.listener,
                notification.kind,
                notification.event_name,
                text,
                notification.ordering_key,
            )
        )
        sink.kept.append((delivery, self.recorder))
        return True
