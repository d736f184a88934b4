"""The retry layer: a failure the route's :class:`~eventisc.settings.RetryPolicy` retries
becomes a :class:`~eventisc.delivery.outcomes.RetryAfter`; any other passes on, final."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..logs import log_extra
from ..settings import RetryPolicy
from .outcomes import Failure, RetryAfter
from .recording import release_frames
from .sender import Layer, Result

if TYPE_CHECKING:
    from ..metrics import ListenerMetrics
    from ..report import Delivery

__all__ = ["RetryLayer"]

logger = logging.getLogger(__name__)


class RetryLayer(Layer):
    """Retries as ``policy`` says; counts and logs each retry (at INFO)."""

    def __init__(self, policy: RetryPolicy, metrics: ListenerMetrics):
        self.policy = policy
        self.metrics = metrics

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is not Failure:
            return result
        exc = result.error
        attempts = delivery.attempts
        if not self.policy.should_retry(exc, attempts):
            return result
        delay = self.policy.delay(attempts, exc)
        event_name = delivery.notification.event_name  # type: ignore[union-attr]
        logger.info(
            "listener %r: attempt %d for event %r failed (%s); retrying in %.2fs",
            *(delivery.name, attempts, event_name, exc, delay),
            extra=log_extra(event_name, delivery.name, attempts, "retrying"),
        )
        self.metrics.retried.inc()
        release_frames(exc)
        return RetryAfter(delay)
