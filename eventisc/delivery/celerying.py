"""The Celery send step: a notification becomes an ``eventisc.deliver`` task for the workers.

:class:`Handoff` holds the Celery app the tasks go through (the service's, named by
``celery_delivery.app``, or eventisc's own for ``celery_delivery.broker_url``, with publisher
confirms on RabbitMQ) and publishes one task per notification, bounded by
``celery_delivery.timeout``. :class:`ToCelery` is a route's step: it encodes the rendered
payload (bytes and secrets kept, as in the spool and the outbox), sends the task with the
notification id as its task id, and records the delivery as ``outboxed`` once the broker took
it. A broker that refuses it or cannot be reached is the listener's failure: logged, counted,
kept dead in the spool when the app has one, reported by ``dispatch``.

An outbox relay may hand its rows to the workers the same way (``eventisc relay --via
celery``): :class:`HandoffListener` stands for each listener, :class:`HandedLayer` records
each row handed off (the relay deletes it) or hands it off again later.

On a worker whose config has an ``outbox``, :class:`OutboxDeadLayer` keeps each final failure
as a ``dead`` row of the outbox table (instead of the spool), for ``eventisc outbox list`` and
``outbox replay``.

The task's arguments (:data:`TASK_NAME`): notification id, listener name, encoded payload, event
name, attempts made so far. A worker (:mod:`eventisc.contrib.celery`) delivers it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from .._spool_codec import encode_payload
from ..notification import Notification
from ..report import Delivery
from .outcomes import FINAL, Failure, RetryAfter, Sent
from .recording import release_frames
from .sender import Layer, Result
from .spooling import SpoolLayer

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..outbox.writer import OutboxWriter
    from ..settings import CeleryDeliverySettings, RetryPolicy
    from ..spool import Spool
    from .recording import Recorder

__all__ = [
    "TASK_NAME",
    "HandedLayer",
    "Handoff",
    "HandoffListener",
    "DeadRow",
    "OutboxDeadLayer",
    "ToCelery",
    "WorkerDelivery",
    "keep_dead_in_outbox",
]

logger = logging.getLogger(__name__)

#: The name of the task a worker runs for each notification.
TASK_NAME = "eventisc.deliver"


class Handoff:
    """Sends ``eventisc.deliver`` tasks through the app ``settings`` name; thread-safe. The
    app's connection is made on the first send (and again in a forked child)."""

    def __init__(self, settings: CeleryDeliverySettings):
        self.settings = settings
        #: The celery listener the tasks are published with (its bounded, confirmed publish
        #: and its translation of broker errors); a bad `app` or `broker_url` is a ConfigError
        #: at load.
        self.publisher = self._build()

    def _build(self) -> Listener:
        from ..errors import ConfigError
        from ..listeners.celery import CeleryListener  # celery: only for apps that use it

        settings = self.settings
        try:
            return CeleryListener(
                event_name="*",
                task_name=TASK_NAME,
                queue=settings.queue,
                broker_url=settings.broker_url,
                celery_app=settings.app,
                timeout=settings.timeout,
                name="celery_delivery",
            )
        except ConfigError as exc:
            raise exc.within("celery_delivery") from None

    def send(self, notification: Notification) -> Any:
        """Publish the task for ``notification`` (its payload encoded as the spool stores it:
        bytes and secrets kept); return once the broker took it. Raises TemplateError for a
        payload that cannot be encoded, else the publisher's DeliveryError."""
        text = encode_payload(notification.payload, notification.listener, notification.trace)
        task = Notification(
            notification.listener,
            "celery",
            notification.event_name,
            {
                "task_name": TASK_NAME,
                "args": [
                    notification.id,
                    notification.listener,
                    text,
                    notification.event_name,
                    0,  # attempts made before the hand-off
                ],
                "kwargs": {},
                "queue": self.settings.queue,
                "options": {},
            },
            notification.id,
            trace=notification.trace,  # the task message carries the trigger's trace too
        )
        return self.publisher.deliver(task)

    def close(self) -> None:
        self.publisher.close()


class ToCelery:
    """Hand the notification to the Celery workers (see the module docstring)."""

    __slots__ = ("listener", "recorder", "handoff", "dead")

    def __init__(
        self, listener: Listener, recorder: Recorder, handoff: Handoff, spool: Spool | None
    ):
        self.listener = listener
        self.recorder = recorder
        self.handoff = handoff
        #: Keeps a notification the broker did not take as a dead letter (with a spool).
        self.dead = SpoolLayer(spool) if spool is not None else None

    def send(
        self, notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        delivery = Delivery(self.listener, notification)
        delivery.attempts = 1
        if sink is not None:
            sink.append(delivery)
        try:
            detail = self.handoff.send(notification)
        except Exception as exc:
            return self._failed(delivery, exc)
        self.recorder.finish(delivery, "outboxed", detail=f"queued for the workers: {detail}")
        return True

    def _failed(self, delivery: Delivery, exc: Exception) -> BaseException:
        result = Failure(exc) if self.dead is None else self.dead.after(delivery, Failure(exc))
        return self.recorder.give_up(delivery, exc, result.status)  # type: ignore[union-attr]


class HandoffListener:
    """Stands for ``listener`` in an outbox relay that hands its rows to Celery
    (``eventisc relay --via celery``): its ``deliver`` sends the ``eventisc.deliver`` task
    instead of delivering. Same name and kind, so the relay's rows find it."""

    def __init__(self, listener: Listener, handoff: Handoff):
        self.listener = listener
        self.handoff = handoff
        self.name = listener.name
        self.kind = listener.kind

    def deliver(self, notification: Notification) -> Any:
        return self.handoff.send(notification)

    def delivers_async(self) -> bool:
        return False


class HandedLayer(Layer):
    """The outermost layer of a relay's hand-offs: a task the broker took is recorded as
    ``outboxed`` (the relay deletes its row); a broker that did not take it leaves the row to
    be handed off again after the policy's delay, however many times (the broker is down, not
    the receiver)."""

    def __init__(self, recorder: Recorder, policy: RetryPolicy):
        self.recorder = recorder
        self.policy = policy

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is Sent:
            detail = f"queued for the workers: {result.detail}"
            self.recorder.finish(delivery, "outboxed", detail=detail)
            return FINAL
        if type(result) is Failure:
            error = result.error
            delay = self.policy.delay(max(delivery.attempts, 1), error)
            logger.warning(
                "listener %r: could not hand notification %s to Celery (%s); again in %.1fs",
                self.recorder.listener.name,
                delivery.notification.id if delivery.notification is not None else "?",
                error,
                delay,
            )
            release_frames(error)
            return RetryAfter(delay)
        return result


class DeadRow(NamedTuple):
    """The outbox row a worker's final failure became (what the log line names)."""

    seq: int


class WorkerDelivery(Delivery):
    """A delivery on a Celery worker; ``row`` is its dead row once the outbox keeps it."""

    __slots__ = ("row",)

    def __init__(self, listener: Listener, notification: Notification):
        super().__init__(listener, notification)
        self.row: DeadRow | None = None


def keep_dead_in_outbox(
    writer: OutboxWriter, notification: Notification, attempts: int, error: str
) -> DeadRow | None:
    """Write ``notification`` as a dead row of the outbox table (its id, listener, payload,
    ``attempts`` and last ``error``); None, logged, when the table cannot be written."""
    try:
        text = encode_payload(notification.payload, notification.listener, notification.trace)
        row = (
            notification.id,
            notification.listener,
            notification.kind,
            notification.event_name,
            text,
            None,
        )
        return DeadRow(writer.write_dead(row, attempts, error))
    except Exception:
        logger.exception(
            "could not keep notification %s dead in the outbox table %s",
            notification.id,
            writer.settings.table,
        )
        return None


class OutboxDeadLayer(Layer):
    """A worker's final failures into the outbox table as ``dead`` rows (the worker's config
    has an ``outbox``); recorded as ``spooled`` once written."""

    def __init__(self, writer: OutboxWriter):
        self.writer = writer

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is Failure and delivery.notification is not None:
            error = result.error
            text = f"{type(error).__name__}: {error}"
            dead = keep_dead_in_outbox(self.writer, delivery.notification, delivery.attempts, text)
            if dead is not None:
                if isinstance(delivery, WorkerDelivery):  # the log line names the row
                    delivery.row = dead
                return Failure(error, "spooled")
        return result
