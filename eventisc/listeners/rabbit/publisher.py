"""The ``rabbit`` kind's pipelined publisher: many publisher confirms in flight on one
connection, for background delivery.

Waiting for each confirm before the next publish (``BlockingConnection``) caps a listener at a
few thousand messages per second, and more threads do not help. :class:`PipelinedPublisher`
keeps up to ``max_in_flight`` messages unconfirmed on one connection that a daemon thread owns
(pika's ``SelectConnection``, see :mod:`.session`), and resolves each message when its ack,
nack or basic.return arrives.

How a message travels: :meth:`PipelinedPublisher.publish` appends it to a deque, and wakes the
I/O thread only when the thread is not already due to look at the deque (one wake-up per batch,
not per message). The thread publishes as many as the window allows; each ack (``multiple``
ones cover a range of delivery tags) resolves messages and lets more in.

Outcomes, each message's ``done(detail, error)`` called exactly once: ``("confirmed", None)``;
``Rejected`` for a nack, or for a mandatory message the broker returned (a return comes before
the ack of the same message); ``ConnectError`` for every message in flight or waiting when the
connection or channel is lost (the caller retries: a message may then arrive twice, never
zero times); ``DeliveryTimeout`` for messages unconfirmed after ``timeout`` seconds (the
connection is then dropped). A failed connect fails the messages waiting for it; the next
message connects again. Holding messages back while a broker is down is the circuit breaker's
job (:mod:`eventisc.delivery.breaker`), as for every kind.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

from ..._fork import register
from ...errors import ConnectError, DeliveryError, DeliveryTimeout
from .errors import translate_error
from .session import Done, Message, Session, call_done

__all__ = ["Done", "PipelinedPublisher", "call_done"]

logger = logging.getLogger(__name__)


#: A publisher's connection states.
IDLE, CONNECTING, OPEN = "idle", "connecting", "open"


class PipelinedPublisher:
    """Publishes with confirms pipelined over one connection owned by a daemon thread.

    ``parameters`` are pika connection parameters, ``target`` the host:port for messages;
    ``declarations`` the exchange, queue and bind arguments declared on each connect;
    ``timeout`` bounds a confirm, a wait for room, and each setup step; errors name the
    ``listener`` (an object with a ``name``, held weakly). Nothing connects
    before the first :meth:`publish`. Thread-safe; after ``os.fork()`` the child starts afresh
    and never touches the parent's connection.

    The publisher owns the queue of waiting messages and the connection state; its
    :class:`~.session.Session` (the I/O thread) reaches them only through the calls of the
    :class:`~.session.Publisher` protocol, under the publisher's lock.
    """

    def __init__(
        self,
        parameters: Any,
        target: str,
        *,
        timeout: float,
        declarations: tuple[Any, Any, Any] = (None, None, None),
        max_in_flight: int = 1000,
        max_queued: int | None = None,
        listener: Any = None,
    ):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        self.parameters = parameters
        self.target = target
        self.timeout = timeout
        self.declarations = declarations
        self.max_in_flight = max_in_flight
        #: Messages waiting for the window beyond this make :meth:`publish` wait.
        self.max_queued = max_queued or 2 * max_in_flight
        self._owner = None if listener is None else weakref.ref(listener)
        self._reset()
        register(self)

    def _after_fork(self) -> None:
        self._reset()  # the parent's connection and I/O thread are not ours

    def _reset(self) -> None:
        """Start with no connection and new locks (at creation, and in a forked child)."""
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._close_lock = threading.Lock()
        self._queue: deque[Message] = deque()
        self._state = IDLE
        self._session: Session | None = None
        #: Closing: new messages are refused (read by the session without the lock).
        self.closing = False
        #: The I/O thread will look at the queue again without being woken (read by the
        #: session without the lock, to know whether a confirm should drain).
        self.drain_due = False
        self._waiting = 0

    def publish(
        self, exchange: str, routing_key: str, body: Any, properties: Any, mandatory: bool,
        done: Done,
    ) -> None:  # fmt: skip
        """Queue one message; ``done(detail, error)`` is called exactly once with its outcome.

        ``done`` runs on the I/O thread, or in the calling thread when the message is refused
        at once: the publisher is closing, the connection could not even be started, or no room
        came within ``timeout`` (``DeliveryTimeout``). It must be quick and not block.
        """
        message = (exchange, routing_key, body, properties, mandatory, done)
        error: DeliveryError | None = None
        wake: Session | None = None
        with self._lock:
            queue = self._queue
            # The common case, kept lean: connected (or connecting), and room in the queue.
            if self.closing or self._state == IDLE or len(queue) >= self.max_queued:
                error = self._make_room()
                queue = self._queue  # while it waited, the I/O thread may have taken the queue
            if error is None:
                queue.append(message)
                if self._state == OPEN and not self.drain_due:
                    self.drain_due = True
                    wake = self._session
        if wake is not None:
            wake.wake()
        elif error is not None:
            error.listener = self.listener
            call_done(done, None, error)

    def _make_room(self) -> DeliveryError | None:
        """Make sure a session is there to publish, and room in the queue, waiting up to
        ``timeout`` for it (lock held); return why a message cannot be queued, or None.

        The I/O thread itself (a ``done`` publishing again) gets room at once: it must never
        wait on itself.
        """
        deadline = None
        while True:
            if self.closing:
                return ConnectError(
                    f"the publisher to RabbitMQ at {self.target} is closing; not sent"
                )
            if self._state == IDLE:
                error = self._start()
                if error is not None:
                    return error
            session = self._session
            if len(self._queue) < self.max_queued or (
                session is not None and session.ident == threading.get_ident()
            ):
                return None
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.timeout
            elif now >= deadline:
                return DeliveryTimeout(
                    f"{len(self._queue)} messages already wait for RabbitMQ at {self.target}; "
                    f"no room within {self.timeout:g}s"
                )
            self._waiting += 1
            try:
                self._not_full.wait(deadline - now)
            finally:
                self._waiting -= 1

    def _start(self) -> DeliveryError | None:
        """Open a connection in a new I/O thread (lock held); return the error if it cannot."""
        session = Session(self)
        try:
            session.start()
        except Exception as exc:
            return translate_error(exc, self.target, timeout=self.timeout, doing="connect")
        self._session = session
        self._state = CONNECTING
        return None

    def close(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (default: the publisher's) for confirms, then disconnect.

        New messages fail with ConnectError while it closes; messages still unconfirmed at the
        end fail with ConnectError. The publisher can be used again afterwards (it reconnects).
        """
        timeout = self.timeout if timeout is None else timeout
        with self._close_lock:
            with self._lock:
                self.closing = True
                session = self._session
                self._not_full.notify_all()
            try:
                if session is not None:
                    session.close(timeout)
            finally:
                with self._lock:
                    self.closing = False

    # -- what the session calls, from its I/O thread (the Publisher protocol) ----------------

    def connected(self, session: Session) -> None:
        """``session`` is set up: the next drain publishes (and a connect succeeded)."""
        with self._lock:
            self._state = OPEN
            self.drain_due = True

    def take_batch(self, session: Session, room: int, idle: bool) -> Collection[Message] | None:
        """The waiting messages ``session`` may publish now, ``room`` at most, in order; None
        or empty when none (or when ``session`` is no longer ours). ``idle``: nothing is in
        flight; a closing publisher with nothing left sets ``session.flushed``."""
        with self._lock:
            if self._session is not session:
                return None
            queue = self._queue
            n = len(queue)
            batch: Collection[Message] | None = None
            if not session.ready or n == 0 or room <= 0:
                self.drain_due = session.ready and n > 0  # an ack will drain, or connected()
            elif n <= room:
                batch, self._queue = queue, deque()
                self.drain_due = False
            else:
                batch = [queue.popleft() for _ in range(room)]
                self.drain_due = True  # the window is full now: the next ack drains
            if self._waiting and batch:
                self._not_full.notify_all()
            if self.closing and idle and not self._queue and not batch:
                session.flushed.set()
        return batch

    def put_back(self, messages: Sequence[Message]) -> None:
        """Return taken messages, unsent, to the front of the queue, in their order."""
        with self._lock:
            self._queue.extendleft(reversed(messages))

    def ended(self, session: Session) -> Collection[Message]:
        """``session``'s connection is gone: forget it; return the messages that were waiting
        for it, now the session's to fail."""
        queued: Collection[Message] = ()
        with self._lock:
            if self._session is session:
                self._session = None
                self._state = IDLE
                queued, self._queue = self._queue, deque()
                self.drain_due = False
                self._not_full.notify_all()
        return queued

    @property
    def listener(self) -> str | None:
        """The name errors carry: the listener's, read now (an App may rename a listener)."""
        owner = self._owner() if self._owner is not None else None
        return None if owner is None else owner.name

    @property
    def state(self) -> str:
        """``idle`` (no connection), ``connecting`` or ``open``."""
        return self._state
