"""A pipelined RabbitMQ publisher: many publisher confirms in flight on one connection.

Waiting for each confirm before the next publish (``BlockingConnection``) caps a listener at a
few thousand messages per second, and more threads do not help. :class:`PipelinedPublisher`
keeps up to ``max_in_flight`` messages unconfirmed on one connection that a daemon thread owns
(pika's ``SelectConnection``), and resolves each message when its ack, nack or basic.return
arrives.

How a message travels: :meth:`PipelinedPublisher.publish` appends it to a deque, and wakes the
I/O thread only when the thread is not already due to look at the deque (one wake-up per batch,
not per message). The thread publishes as many as the window allows; each ack (``multiple``
ones cover a range of delivery tags) resolves messages and lets more in.

Outcomes, each message's ``done(detail, error)`` called exactly once: ``("confirmed", None)``;
``Rejected`` for a nack, or for a mandatory message the broker returned (a return comes before
the ack of the same message); ``ConnectError`` for every message in flight or waiting when the
connection or channel is lost (the caller retries: a message may then arrive twice, never
zero times); ``DeliveryTimeout`` for messages unconfirmed after ``timeout`` seconds (the
connection is then dropped). After a failed connect, messages fail at once for a short,
growing pause instead of piling up against a broker that is down.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import Any

from .._fork import register
from ..errors import ConnectError, DeliveryError, DeliveryTimeout
from ._rabbit_errors import translate_error
from ._rabbit_session import (
    CONNECTING,
    IDLE,
    OPEN,
    Done,
    Message,
    Session,
    call_done,
    clone_error,
)

__all__ = ["Done", "PipelinedPublisher", "call_done"]

logger = logging.getLogger("eventisc.listeners.rabbit")

#: After a failed connect, messages fail at once for this many seconds, doubled after each
#: further failure up to :data:`MAX_PAUSE`, so a broker that is down is not hammered.
FIRST_PAUSE = 0.1
MAX_PAUSE = 2.0


class PipelinedPublisher:
    """Publishes with confirms pipelined over one connection owned by a daemon thread.

    ``parameters`` are pika connection parameters, ``target`` the host:port for messages;
    ``declarations`` the exchange, queue and bind arguments declared on each connect;
    ``timeout`` bounds a confirm, a wait for room, and each setup step; errors name the
    ``listener`` (an object with a ``name``, held weakly). Nothing connects
    before the first :meth:`publish`. Thread-safe; after ``os.fork()`` the child starts afresh
    and never touches the parent's connection.
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
        self._closing = False
        #: The I/O thread will look at the queue again without being woken.
        self._drain_due = False
        self._waiting = 0
        self._failures = 0
        self._down_until = 0.0
        self._down_error: DeliveryError | None = None

    def publish(
        self, exchange: str, routing_key: str, body: Any, properties: Any, mandatory: bool,
        done: Done,
    ) -> None:  # fmt: skip
        """Queue one message; ``done(detail, error)`` is called exactly once with its outcome.

        ``done`` runs on the I/O thread, or in the calling thread when the message is refused
        at once: the publisher is closing, the broker could not be reached moments ago, or no
        room came within ``timeout`` (``DeliveryTimeout``). It must be quick and not block.
        """
        message = (exchange, routing_key, body, properties, mandatory, done)
        error: DeliveryError | None = None
        wake: Session | None = None
        deadline = None
        with self._lock:
            while True:
                if self._closing:
                    error = ConnectError(
                        f"the publisher to RabbitMQ at {self.target} is closing; not sent"
                    )
                    break
                if self._state == IDLE:
                    now = time.monotonic()
                    if now < self._down_until and self._down_error is not None:
                        left = self._down_until - now
                        error = clone_error(self._down_error, None, f" (next try in {left:.1f}s)")
                        break
                    error = self._start()
                    if error is not None:
                        break
                session = self._session
                queue = self._queue
                if len(queue) < self.max_queued or (
                    session is not None and session.ident == threading.get_ident()
                ):  # room, or called back from the I/O thread, which must never wait on itself
                    queue.append(message)
                    if self._state == OPEN and not self._drain_due:
                        self._drain_due = True
                        wake = session
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                elif now >= deadline:
                    error = DeliveryTimeout(
                        f"{len(queue)} messages already wait for RabbitMQ at {self.target}; "
                        f"no room within {self.timeout:g}s"
                    )
                    break
                self._waiting += 1
                try:
                    self._not_full.wait(deadline - now)
                finally:
                    self._waiting -= 1
        if wake is not None:
            wake.wake()
        elif error is not None:
            error.listener = self.listener
            call_done(done, None, error)

    def _start(self) -> DeliveryError | None:
        """Open a connection in a new I/O thread (lock held); return the error if it cannot."""
        session = Session(self)
        try:
            session.start()
        except Exception as exc:
            error = translate_error(exc, self.target, timeout=self.timeout, doing="connect")
            self._went_down(error)
            return error
        self._session = session
        self._state = CONNECTING
        return None

    def _went_down(self, error: DeliveryError) -> None:
        """Refuse messages at once for a while after a failed connect (lock held)."""
        self._failures += 1
        pause = min(FIRST_PAUSE * 2 ** (self._failures - 1), MAX_PAUSE)
        self._down_until = time.monotonic() + pause
        self._down_error = error

    def close(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (default: the publisher's) for confirms, then disconnect.

        New messages fail with ConnectError while it closes; messages still unconfirmed at the
        end fail with ConnectError. The publisher can be used again afterwards (it reconnects).
        """
        timeout = self.timeout if timeout is None else timeout
        with self._close_lock:
            with self._lock:
                self._closing = True
                session = self._session
                self._not_full.notify_all()
            try:
                if session is not None:
                    session.close(timeout)
            finally:
                with self._lock:
                    self._closing = False
                    self._failures = 0
                    self._down_until = 0.0

    @property
    def listener(self) -> str | None:
        """The name errors carry: the listener's, read now (an App may rename a listener)."""
        owner = self._owner() if self._owner is not None else None
        return None if owner is None else owner.name

    @property
    def state(self) -> str:
        """``idle`` (no connection), ``connecting`` or ``open``."""
        return self._state
