"""The spool layer: dead letters and the durable outbox, for a route whose app has a spool.

A final failure is kept as a ``dead`` entry (or, for a durable delivery already stored as
``pending``, that entry becomes dead); a durable delivery's entry is deleted once delivered.
A spool that cannot be written is logged and the failure stays a failure: nothing is lost
silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .outcomes import Failure, Sent
from .sender import Layer, Result

if TYPE_CHECKING:
    from ..report import Delivery
    from ..spool import Spool

__all__ = ["SpoolLayer", "keep_dead", "spool_call"]

logger = logging.getLogger(__name__)


def spool_call(spool: Spool, doing: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; a failure is logged (``could not <doing> the spool FILE``) and gives None."""
    try:
        return fn(*args)
    except Exception:
        logger.exception("could not %s the spool %s", doing, spool.path)
        return None


def keep_dead(spool: Spool, delivery: Delivery, error: str, reason: str) -> bool:
    """Keep a delivery given up on as a ``dead`` entry (its pending entry, if durable, becomes
    dead). True once stored."""
    assert delivery.notification is not None
    if delivery.spool_id is not None:
        spool.give_up(delivery.spool_id, error=error, attempts=delivery.attempts, reason=reason)
    else:
        delivery.spool_id = spool.add(
            delivery.notification,
            state="dead",
            reason=reason,
            error=error,
            attempts=delivery.attempts,
        )
    return True


class SpoolLayer(Layer):
    """Final failures into the spool; delivered durable entries out of it."""

    def __init__(self, spool: Spool):
        self.spool = spool

    def after(self, delivery: Delivery, result: Result) -> Result:
        kind = type(result)
        if kind is Sent:
            if delivery.spool_id is not None:
                spool_call(self.spool, "remove a delivered notification from",
                           self.spool.delivered, delivery.spool_id)  # fmt: skip
            return result
        if kind is Failure and delivery.notification is not None:
            error: BaseException = result.error  # type: ignore[union-attr]
            text = f"{type(error).__name__}: {error}"
            args = (self.spool, delivery, text, "failed")
            if spool_call(self.spool, "keep a failed notification in", keep_dead, *args):
                return Failure(error, "spooled")
        return result
