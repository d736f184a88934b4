"""Delivery on Celery workers: the ``eventisc.deliver`` task, on your Celery app or eventisc's.

``delivery: celery`` hands each rendered notification to a Celery queue as one
``eventisc.deliver`` task (:mod:`eventisc.delivery.celerying`). A worker runs it with the
listener of the same name in its own config (``EVENTISC_CONFIG``): one attempt per task run,
the listener's retry policy mapped onto Celery's (``countdown`` = the backoff or the receiver's
``Retry-After``, ``max_retries`` = ``max_attempts - 1``), the final failure kept dead in the
worker's outbox table (its config has an ``outbox``) or spool, and recorded (the
``failed``/``spooled`` hooks, metrics, logs). The task is ``acks_late`` with
``reject_on_worker_lost``: a worker killed mid-delivery leaves it to another worker. The
notification id is the task id and the idempotency id the receiver sees on every attempt.

- ``celery -A eventisc.worker worker -Q eventisc``: eventisc's own worker app
  (:mod:`eventisc.worker`);
- :func:`install` registers the task on your own Celery app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._spool_codec import decode_payload, pop_trace
from ..delivery.celerying import TASK_NAME, WorkerDelivery
from ..delivery.outcomes import RetryAfter
from ..errors import ConfigError
from ..logs import log_extra
from ..notification import Notification

if TYPE_CHECKING:
    import celery

    from ..app import App
    from ..delivery.sender import Sender

__all__ = ["TASK_NAME", "install"]

logger = logging.getLogger("eventisc.worker")


class _Worker:
    """What the task delivers with: the eventisc app (built on the first task, in the worker
    process) and each listener's sender."""

    def __init__(self, app: App | Callable[[], App] | None):
        self._source = app
        self._lock = threading.Lock()
        self._app: App | None = None
        self._senders: dict[str, Sender] = {}

    def app(self) -> App:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
                    self._senders = self._app.worker_senders()
        return self._app

    def _build(self) -> App:
        source = self._source
        if source is None:
            from .. import get_current_app  # the config in EVENTISC_CONFIG

            return get_current_app()
        return source if not callable(source) else source()

    def sender(self, name: str) -> Sender | None:
        self.app()
        return self._senders.get(name)

    def run(
        self,
        task: Any,
        notification_id: str,
        listener: str,
        payload: str,
        event_name: str,
        attempts: int = 0,
    ) -> str:
        """One attempt of the notification; raises ``task.retry(...)`` when the listener's
        policy retries it, ConfigError for a listener this worker's config lacks."""
        made = attempts + int(task.request.retries or 0)
        sender = self.sender(listener)
        if sender is None:
            raise self._unknown(notification_id, listener, payload, event_name, made)
        body = decode_payload(payload)
        notification = Notification(
            listener, sender.listener.kind, event_name, body, notification_id, trace=pop_trace(body)
        )
        delivery = WorkerDelivery(sender.listener, notification)
        delivery.attempts = made
        outcome = sender.attempt(delivery)
        if type(outcome) is RetryAfter:
            policy = self.app().plan(listener).policy
            raise task.retry(countdown=outcome.delay, max_retries=policy.max_attempts - 1)
        return f"{delivery.status} after {delivery.attempts} attempts"

    def _unknown(
        self, notification_id: str, listener: str, payload: str, event_name: str, attempts: int
    ) -> ConfigError:
        """A task for a listener this worker does not know: kept dead in the spool (when the
        app has one) and logged at ERROR; the ConfigError to raise."""
        app = self.app()
        known = ", ".join(sorted(self._senders)) or "none"
        error = ConfigError(
            f"this worker's config has no listener {listener!r} (it has: {known}): notification "
            f"{notification_id} of event {event_name!r} cannot be delivered here; give the "
            "workers the same config as the services that trigger"
        )
        try:
            body = decode_payload(payload)
        except ValueError:
            body = {"undecodable": payload}
        dead = Notification(listener, "unknown", event_name, body, notification_id)
        where = app.keep_dead(dead, attempts, f"ConfigError: {error}")
        logger.error(
            "%s; %s",
            error,
            where,
            extra=log_extra(event_name, listener, attempts, "failed"),
        )
        return error


def install(celery_app: celery.Celery, app: App | Callable[[], App] | None = None) -> Any:
    """Register the ``eventisc.deliver`` task on ``celery_app`` and return it.

    ``app`` is the eventisc app whose listeners deliver (or a function returning it, called
    on the first task); default: the default app, from ``EVENTISC_CONFIG``. Start the workers
    with ``-Q`` naming the ``celery_delivery`` queue (``eventisc`` by default).
    """
    worker = _Worker(app)

    @celery_app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,  # each retry gives the listener's own limit
    )
    def deliver(
        task: Any,
        notification_id: str,
        listener: str,
        payload: str,
        event_name: str,
        attempts: int = 0,
    ) -> str:
        return worker.run(task, notification_id, listener, payload, event_name, attempts)

    return deliver
