"""A relay's deliveries: claimed rows become notifications, delivered by their listeners.

Each listener delivers through a sender the app wires for relays
(:meth:`~eventisc.delivery.Deliverer.relay_sender`): its circuit breaker, the retry decision of
its policy without inline retries, and the recording of final outcomes (metrics, hooks, logs),
exactly as in background delivery. Listeners that deliver synchronously run on up to
``concurrency`` worker threads, with as many rows again waiting for a worker (so a worker that
finishes never waits for the next claim); those that pipeline (``delivers_async()``, RabbitMQ
with confirms) are started from the relay's thread and answer through a callback, up to
``ASYNC_BATCHES × batch`` messages in flight. Either way the
outcome goes to :class:`~eventisc.outbox.claims.Outcomes`: delivered (or declined by the
listener), retry after the policy's delay, or dead.

A row that cannot be delivered at all is dead at once, with an error saying why: its listener
is not in the config, was written for another kind, or its payload cannot be decoded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .._spool_codec import decode_payload, pop_trace
from ..delivery.outcomes import FINAL, Failure, Outcome, RetryAfter
from ..delivery.sender import AsyncSender, Layer, Resolve, Result
from ..errors import OutboxError
from ..masking import mask_url
from ..notification import Notification
from ..report import Delivery
from .claims import Outcomes, Row

if TYPE_CHECKING:
    from ..delivery.breaker import CircuitBreaker
    from ..delivery.sender import Sender
    from ..listeners.base import Listener

__all__ = ["Deliveries", "NoteError", "RowDelivery", "error_text"]

logger = logging.getLogger(__name__)

#: The longest error text kept in a row's ``last_error``.
MAX_ERROR = 2000
#: Messages of pipelining listeners in flight at most, in claims of ``batch`` rows.
ASYNC_BATCHES = 10

#: What the app wires for each listener: its sender and circuit breaker (if it has one).
Senders = dict[str, "tuple[Sender, CircuitBreaker | None]"]
#: Wires the app's listeners for a relay, given the relay's own layer and where outcomes go
#: (:meth:`eventisc.App.relay_senders`).
Wire = Callable[[Layer, Resolve], Senders]


def error_text(exc: BaseException) -> str:
    """An error as stored in ``last_error``: its class and message on one line, passwords
    masked, at most :data:`MAX_ERROR` characters."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return mask_url(text)[:MAX_ERROR]


class RowDelivery(Delivery):
    """The delivery of one claimed row: its ``row``, and ``note``, the text of the last
    attempt's error (for ``last_error``)."""

    __slots__ = ("row", "note", "asynchronous")

    def __init__(
        self, listener: Listener, notification: Notification, row: Row, asynchronous: bool
    ):
        super().__init__(listener, notification)
        self.row = row
        self.note = ""
        self.asynchronous = asynchronous
        self.attempts = row.attempts  # the sender counts the attempt it makes: attempts + 1


class NoteError(Layer):
    """Keeps the text of a failed attempt's error on the :class:`RowDelivery`; the retry and
    record layers then decide what the failure comes to."""

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is Failure:
            delivery.note = error_text(result.error)  # type: ignore[attr-defined]
        return result


class Deliveries:
    """The rows a relay has in hand: started, then settled in ``outcomes`` (see the module).

    ``wire`` builds each listener's sender; ``wake()`` is called after each outcome.
    Thread-safe.
    """

    def __init__(
        self,
        wire: Wire,
        outcomes: Outcomes,
        *,
        concurrency: int,
        batch: int,
        wake: Callable[[], None],
        name: str,
    ):
        self._wire = wire
        self.rewire()
        self.async_limit = ASYNC_BATCHES * batch
        self.outcomes = outcomes
        self.concurrency = concurrency
        self.wake = wake
        self.name = name
        self._lock = threading.Lock()
        self._in_hand = 0
        self._async_in_hand = 0
        self._queue: queue.SimpleQueue[RowDelivery | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._stopping = False
        self._unstarted: list[int] = []

    def rewire(self) -> None:
        """Build each listener's sender again (the app's listeners changed: a reload); rows
        in hand finish with the senders they started with."""
        senders = self._wire(NoteError(), self.settle)
        self._synchronous = any(
            not isinstance(sender, AsyncSender) for sender, _ in senders.values()
        )
        self.senders = senders

    # -- starting ---------------------------------------------------------------------------

    def room(self) -> int:
        """How many more rows it can take now: twice ``concurrency`` for rows of synchronous
        listeners (in the workers' hands and waiting for one), and :attr:`async_limit` for
        rows of pipelining listeners (the rows claimed next may be of either)."""
        room = self.async_limit - self._async_in_hand
        if self._synchronous:
            room = min(room, 2 * self.concurrency - (self._in_hand - self._async_in_hand))
        return room

    @property
    def in_hand(self) -> int:
        """Rows started or waiting for a worker, whose outcome is not known yet."""
        return self._in_hand

    def start(self, rows: Iterable[Row]) -> None:
        """Start delivering ``rows`` (a row that cannot be delivered is dead at once)."""
        for row in rows:
            delivery = self._delivery(row)
            if delivery is None:
                continue
            with self._lock:
                self._in_hand += 1
                self._async_in_hand += delivery.asynchronous
            if delivery.asynchronous:
                sender: AsyncSender = delivery.sender
                sender.start(delivery)
            else:
                self._hand_to_worker(delivery)

    def _delivery(self, row: Row) -> RowDelivery | None:
        wired = self.senders.get(row.listener)
        if wired is None:
            known = ", ".join(sorted(self.senders)) or "none"
            self._dead_at_once(row, None, f"its listener {row.listener!r} is not in this "
                               f"config (its listeners: {known})")  # fmt: skip
            return None
        sender = wired[0]
        listener = sender.listener
        kind = getattr(listener, "kind", type(listener).__name__)
        if row.kind != kind:
            self._dead_at_once(row, sender, f"it was written for a {row.kind} listener, but "
                               f"listener {row.listener!r} is of kind {kind!r}")  # fmt: skip
            return None
        try:
            payload = decode_payload(row.payload)
        except ValueError as exc:
            self._dead_at_once(row, sender, f"its payload cannot be decoded: {exc}")
            return None
        notification = Notification(
            row.listener,
            row.kind,
            row.event_name,
            payload,
            id=row.id,
            ordering_key=row.ordering_key,
            trace=pop_trace(payload),
        )
        delivery = RowDelivery(listener, notification, row, isinstance(sender, AsyncSender))
        delivery.sender = sender
        return delivery

    def _dead_at_once(self, row: Row, sender: Sender | None, why: str) -> None:
        """A row no listener can deliver: dead, with an error naming it and saying why."""
        error = OutboxError(
            f"outbox row {row.seq} (notification {row.id}, event {row.event_name!r}) is dead: {why}"
        )
        self.outcomes.kill(row.seq, error_text(error), row.ordering_key is not None)
        if sender is None:
            logger.error("%s", error)
            return
        notification = Notification(row.listener, row.kind, row.event_name, {}, id=row.id)
        delivery = Delivery(sender.listener, notification)
        delivery.attempts = row.attempts
        sender.recorder.give_up(delivery, error)

    def _hand_to_worker(self, delivery: RowDelivery) -> None:
        # ``_idle`` counts workers that will take a row without a new one: it goes below zero
        # when rows wait for a worker (one takes each, as it finishes its row).
        with self._lock:
            spawn = self._idle == 0 and len(self._workers) < self.concurrency
            if not spawn:
                self._idle -= 1
        if spawn:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._workers) + 1}", daemon=True
            )
            self._workers.append(thread)
            thread.start()
        self._queue.put(delivery)

    # -- delivering -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            if self._stopping:
                self._give_back(delivery)
            else:
                self.settle(delivery, self._attempt(delivery))
            with self._lock:
                self._idle += 1

    def _attempt(self, delivery: RowDelivery) -> Outcome | RetryAfter:
        sender: Sender = delivery.sender
        try:
            return sender.attempt(delivery)
        except Exception as exc:  # a sender never raises; if one did, the row must not vanish
            logger.exception("outbox relay: delivering row %d failed", delivery.row.seq)
            delivery.note = error_text(exc)
            delivery.finish("failed", exc)
            return FINAL

    def settle(self, delivery: Delivery, outcome: Outcome | RetryAfter) -> None:
        """What an attempt came to, to be written: retried, dead, or delivered (declined by
        the listener counts as done). Called from a worker or a listener's I/O thread."""
        row = delivery.row  # type: ignore[attr-defined]
        keyed = row.ordering_key is not None
        if type(outcome) is RetryAfter:
            self.outcomes.retry(row.seq, outcome.delay, delivery.note)  # type: ignore[attr-defined]
        elif delivery.status == "failed":
            self.outcomes.kill(row.seq, delivery.note or "failed", keyed)  # type: ignore[attr-defined]
        else:
            self.outcomes.deliver(row.seq, keyed)
        with self._lock:
            self._in_hand -= 1
            self._async_in_hand -= delivery.asynchronous  # type: ignore[attr-defined]
        self.wake()

    def _give_back(self, delivery: RowDelivery) -> None:
        with self._lock:
            self._unstarted.append(delivery.row.seq)
            self._in_hand -= 1
        self.wake()

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Start no more deliveries: rows waiting for a worker are given back
        (:meth:`unstarted`); those started go on."""
        self._stopping = True
        while True:
            try:
                delivery = self._queue.get_nowait()
            except queue.Empty:
                return
            if delivery is not None:
                self._give_back(delivery)

    def unstarted(self) -> list[int]:
        """The rows given back since the last call (their leases are to be released)."""
        with self._lock:
            seqs, self._unstarted = self._unstarted, []
        return seqs

    def close(self) -> None:
        """End the worker threads (those still delivering end when they are done)."""
        for _ in self._workers:
            self._queue.put(None)
        self._workers.clear()

    def after_fork(self) -> None:
        """A forked child: the parent's workers and deliveries are not here."""
        self._lock = threading.Lock()
        self._queue = queue.SimpleQueue()
        self._workers = []
        self._idle = 0
        self._in_hand = 0
        self._async_in_hand = 0
        self._unstarted = []
