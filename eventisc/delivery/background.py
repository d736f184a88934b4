"""Background delivery for one app: its dispatcher, what a full queue does, shutdown, recovery.

:class:`Background` hands deliveries to the :class:`~eventisc.delivery.dispatcher.Dispatcher`
(``on_full`` says what a full queue does: block for a while, drop, spool); at shutdown it keeps
what is left in the spool as pending, for the next app with the same spool; at start it takes
over what earlier processes left pending there (:meth:`Background.recover`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import QueueFull
from ..logs import Throttle, log_extra
from ..report import Delivery
from ..settings import DispatcherSettings
from .dispatcher import Dispatcher
from .spooling import keep_dead, spool_call

if TYPE_CHECKING:
    from ..spool import Spool
    from .sender import Sender

__all__ = ["Background"]

logger = logging.getLogger(__name__)


class Background:
    """An app's background delivery: queue, workers, ``on_full``, shutdown and recovery."""

    def __init__(self, settings: DispatcherSettings, spool: Spool | None):
        self.settings = settings
        self.spool = spool
        self.on_full = settings.on_full or ("spool" if spool is not None else "block")
        self.dispatcher = Dispatcher(settings)
        self._full_log = Throttle(1.0)

    # -- taking deliveries ----------------------------------------------------------------------

    def keep_pending(self, delivery: Delivery) -> None:
        """Write a durable delivery to the spool as pending (raises when it cannot)."""
        assert self.spool is not None and delivery.notification is not None
        delivery.spool_id = self.spool.add(delivery.notification, state="pending", reason="durable")

    def submit(self, delivery: Delivery) -> bool | BaseException:
        """Queue a delivery: True when accepted; else the :class:`QueueFull` error, the
        delivery recorded as spooled or dropped (``on_full``)."""
        block = self.on_full == "block"
        timeout = self.settings.block_timeout if block else None
        if self.dispatcher.submit(delivery, block, timeout):
            return True
        full = QueueFull(
            f"the background queue is full ({self.settings.queue_size} notifications)",
            delivery.listener.name,
        )
        spooled = self.on_full != "drop" and self.spool is not None
        self._log_full(delivery, full, "spooled" if spooled else "dropped")
        if (spooled or delivery.spool_id is not None) and self.spool is not None:
            spool_call(self.spool, "keep a refused notification in", keep_dead,
                       self.spool, delivery, str(full), "queue full")  # fmt: skip
        delivery.sender.recorder.finish(delivery, "spooled" if spooled else "dropped", full)
        return full

    def track(self, delivery: Delivery) -> None:
        """Count a delivery that starts outside the queue (a pipelined listener's)."""
        self.dispatcher.track(delivery)

    def _log_full(self, delivery: Delivery, full: QueueFull, outcome: str) -> None:
        # A full queue refuses notifications by the thousand: one record per second, with
        # the count, rather than a record each (the metrics count every one).
        skipped = self._full_log.ready()
        if skipped is None:
            return
        assert delivery.notification is not None
        level = logging.WARNING if outcome == "spooled" else logging.ERROR
        more = f" (and {skipped} more since the last such message)" if skipped else ""
        logger.log(
            level,
            "listener %r: %s; %s%s",
            *(delivery.name, full, outcome, more),
            extra=log_extra(delivery.notification.event_name, delivery.name, 0, outcome),
        )

    # -- waiting and stopping -------------------------------------------------------------------

    def flush(self, timeout: float | None) -> bool:
        return self.dispatcher.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> list[Delivery]:
        """Drain the queue for up to ``timeout`` (default ``shutdown_timeout``) seconds, then
        keep what is left in the spool as pending (the next app with this spool delivers it),
        or log it as lost. Returns what was left."""
        wait = self.settings.shutdown_timeout if timeout is None else timeout
        leftovers = self.dispatcher.shutdown(wait)
        if leftovers:
            self._keep(leftovers)
        return leftovers

    def _keep(self, leftovers: Sequence[Delivery]) -> None:
        spool = self.spool
        kept = spool is not None and spool_call(
            spool, "keep the notifications left at shutdown in", _save_pending, spool, leftovers
        )
        status = "spooled" if kept else "dropped"
        for delivery in leftovers:
            error = QueueFull("still queued at shutdown", delivery.name)
            delivery.sender.recorder.finish(delivery, status, error)
        if kept:
            assert spool is not None
            logger.warning(
                "%d notification(s) were still queued at shutdown; kept in the spool %s, "
                "delivered by the next app using it",
                *(len(leftovers), spool.path),
            )
            return
        logger.error(
            "%d notification(s) were still queued at shutdown and are lost%s: %s",
            len(leftovers),
            "" if spool is not None else " (configure a spool to keep them)",
            ", ".join(sorted({d.name for d in leftovers})),
        )

    # -- recovery -------------------------------------------------------------------------------

    def recover(self, senders: Mapping[str, tuple[Sender, int]]) -> threading.Thread | None:
        """Deliver in the background what an earlier process left pending in the spool, for
        the listeners named in ``senders`` (name: its sender and priority)."""
        if self.spool is None or not senders:
            return None
        thread = threading.Thread(
            target=self._recover, args=(dict(senders),), name="eventisc-recover", daemon=True
        )
        thread.start()
        return thread

    def _recover(self, senders: dict[str, tuple[Sender, int]]) -> None:
        assert self.spool is not None
        try:
            entries = self.spool.claim_orphans(list(senders))
        except Exception:
            logger.exception("could not read pending notifications from %s", self.spool.path)
            return
        if entries:
            logger.info(
                "delivering %d pending notification(s) left in %s", len(entries), self.spool.path
            )
        for entry in entries:
            sender, priority = senders[entry.notification.listener]
            delivery = Delivery(sender.listener, entry.notification, priority, entry.id)
            delivery.attempts = entry.attempts
            delivery.sender = sender
            self.dispatcher.submit(delivery, block=True, timeout=None)


def _save_pending(spool: Spool, leftovers: Sequence[Delivery]) -> bool:
    """Keep deliveries left at shutdown as pending entries nobody owns."""
    from ..spool import SpoolItem

    durable = [d.spool_id for d in leftovers if d.spool_id is not None]
    if durable:
        spool.release(durable)  # already stored: let the next app take them
    spool.add_many(
        SpoolItem(d.notification, state="pending", reason="shutdown", owner=None,
                  attempts=d.attempts)
        for d in leftovers
        if d.spool_id is None and d.notification is not None
    )  # fmt: skip
    return True
