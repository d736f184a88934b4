"""The I/O thread of the ``rabbit`` kind's pipelined publisher (:mod:`.publisher`).

One :class:`Session` is one ``SelectConnection`` and its confirm-mode channel, run by a daemon
thread: it publishes what its publisher hands it while the window allows, joins each batch's
frames before sending them (pika sends each frame with its own ``send()``, which releases the
GIL three times per message), resolves messages as acks, nacks and returns arrive, and fails
what it holds when the connection or channel is lost.

What a session needs of its publisher is the :class:`Publisher` protocol: its settings, two
flags it reads without the lock, and four calls (:meth:`~Publisher.connected`,
:meth:`~Publisher.take_batch`, :meth:`~Publisher.put_back`, :meth:`~Publisher.ended`) through
which the publisher keeps its queue and state to itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import pika
import pika.exceptions as pe
from pika.adapters.blocking_connection import ReturnedMessage

from ...errors import ConnectError, DeliveryError, DeliveryTimeout
from .errors import ConfirmTimeout, clone_error, translate_error

__all__ = ["Done", "Message", "Publisher", "Session", "call_done"]

logger = logging.getLogger(__name__)

#: ``done(detail, error)``: detail is "confirmed" and error None, or detail None and an error.
Done = Callable[[Any, Any], None]

#: A batch's frames are joined into chunks of about this many bytes before they are sent.
COALESCE_BYTES = 256 * 1024

Message = tuple[str, str, Any, Any, bool, Done]  # exchange, key, body, properties, mandatory
_ACK = pika.spec.Basic.Ack
_NO_EXCHANGE = re.compile(r"NOT_FOUND - no exchange '(.*)' in vhost ")


def call_done(done: Done, detail: Any, error: Any) -> None:
    """Call ``done``; log what it raises (it runs on the I/O loop, which must go on)."""
    try:
        done(detail, error)
    except Exception:  # a caller's bug must not break the I/O loop
        logger.exception("a RabbitMQ delivery callback raised")


class Publisher(Protocol):
    """What a :class:`Session` needs of the publisher it works for.

    The session reads the settings and flags without a lock, and makes the calls on its I/O
    thread; the publisher takes its own lock in each call.
    """

    #: pika connection parameters.
    parameters: Any
    #: host:port, for messages.
    target: str
    #: Seconds for a confirm and for each setup step.
    timeout: float
    #: The exchange, queue and bind arguments declared on each connect (or None).
    declarations: tuple[Any, Any, Any]
    #: Messages that may await their confirm at once.
    max_in_flight: int
    #: The session is to look at the queue when the next confirm comes (set under the lock).
    drain_due: bool
    #: The publisher is closing: the session reports when nothing is left to confirm.
    closing: bool

    @property
    def listener(self) -> str | None:
        """The listener name errors carry."""
        ...

    def connected(self, session: Session) -> None:
        """``session`` is set up: messages may be published on it."""
        ...

    def take_batch(self, session: Session, room: int, idle: bool) -> Collection[Message] | None:
        """The waiting messages ``session`` may publish now, ``room`` at most, in order; None
        or empty when none (or when ``session`` is no longer the publisher's). ``idle``:
        nothing is in flight; a closing publisher with nothing left sets ``session.flushed``.
        """
        ...

    def put_back(self, messages: Sequence[Message]) -> None:
        """Return taken messages, unsent, to the front of the queue, in their order."""
        ...

    def ended(self, session: Session) -> Collection[Message]:
        """``session``'s connection is gone; return the messages that were waiting for it,
        now the session's to fail."""
        ...


class Session:
    """One connection and its I/O thread, working for one :class:`Publisher`.

    Its publisher calls :meth:`start`, :meth:`wake` and :meth:`close` from any thread, and
    reads ``ident`` (the I/O thread's), ``ready`` (publishing) and sets ``flushed`` (nothing
    left to confirm while closing) under its lock. Everything else runs on the I/O thread.
    """

    def __init__(self, publisher: Publisher):
        self.pub = publisher
        self.conn: Any = None
        self.channel: Any = None
        self.ident: int | None = None
        self.thread: threading.Thread | None = None
        self.ready = False  # publishing: set up, and not being dropped
        self.opened = False  # it was set up once (a loss, not a failed connect)
        self.finished = False
        self.by_us = False  # we are closing the connection
        self.doing = "connect"
        self.loss: DeliveryError | None = None  # why we dropped the connection ourselves
        self.channel_reason: BaseException | None = None
        self.inflight: deque[Message | None] = deque()  # None: resolved out of order
        self.first_tag = 1  # the delivery tag of inflight[0]
        self.marks: deque[tuple[int, float]] = deque()  # (last tag of a batch, sent at)
        #: (exchange, routing key, body) of a returned message -> (it, last tag sent then)
        self.returns: dict[tuple[str, str, bytes], tuple[ReturnedMessage, int]] = {}
        self.timer: Any = None
        self.flushed = threading.Event()

    # -- any thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting, on a new daemon I/O thread (raises what pika raises at once)."""
        self.conn = pika.SelectConnection(
            self.pub.parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self.ioloop = self.conn.ioloop
        self.thread = threading.Thread(
            target=self._run, name=f"eventisc-rabbit-{self.pub.target}", daemon=True
        )
        self.thread.start()

    def wake(self) -> None:
        """Have the I/O thread look at the publisher's queue."""
        self.ioloop.add_callback_threadsafe(self._drain)

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the confirms owed, then close the connection and end
        the I/O thread (what is still unconfirmed fails)."""
        if self.ident == threading.get_ident():
            timeout = 0.0  # called back on the I/O thread: waiting there would wait for nothing
        deadline = time.monotonic() + timeout
        self.wake()  # nothing queued or in flight: _drain says so at once
        self.flushed.wait(timeout)
        grace = max(deadline - time.monotonic(), 0.5)
        self.ioloop.add_callback_threadsafe(lambda: self._shutdown(grace))
        assert self.thread is not None
        if self.thread is not threading.current_thread():
            self.thread.join(grace + 1.0)

    # -- the I/O thread --------------------------------------------------------------------

    def _run(self) -> None:
        self.ident = threading.get_ident()
        try:
            self.ioloop.start()
        except Exception as exc:  # pika's loop itself failed
            if self.opened:
                logger.exception("the RabbitMQ I/O loop for %s failed", self.pub.target)
            self._finish(exc, connect_failed=not self.opened)
        finally:
            try:
                self.ioloop.close()
            except Exception:  # pragma: no cover
                logger.debug("closing the I/O loop failed", exc_info=True)

    def _on_open(self, conn: Any) -> None:
        self.doing = "open a channel"
        self.timer = self.ioloop.call_later(self.pub.timeout, self._setup_timed_out)
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        exchange, queue, bind = self.pub.declarations
        steps: list[tuple[str, Callable[[Callable[[Any], None]], None]]] = [
            ("enable publisher confirms", lambda cb: channel.confirm_delivery(self._on_confirm, cb))
        ]
        if exchange is not None:
            steps.append((
                f"declare exchange {exchange['exchange']!r}",
                lambda cb: channel.exchange_declare(**exchange, callback=cb),
            ))  # fmt: skip
        if queue is not None:
            steps.append((
                f"declare queue {queue['queue']!r}",
                lambda cb: channel.queue_declare(**queue, callback=cb),
            ))  # fmt: skip
        if exchange is not None and queue is not None:
            steps.append((
                f"bind queue {queue['queue']!r} to exchange {exchange['exchange']!r}",
                lambda cb: channel.queue_bind(
                    queue["queue"], exchange["exchange"], **(bind or {}), callback=cb
                ),
            ))  # fmt: skip

        def next_step(_frame: Any = None) -> None:
            if steps:
                self.doing, step = steps.pop(0)
                step(next_step)
            else:
                self._on_ready()

        next_step()

    def _on_ready(self) -> None:
        self.ioloop.remove_timeout(self.timer)
        self.timer = None
        self.doing = "publish"
        self.ready = self.opened = True
        self.pub.connected(self)
        self._drain()

    def _setup_timed_out(self) -> None:
        self.timer = None
        self._drop(
            DeliveryTimeout(
                f"RabbitMQ at {self.pub.target} did not answer within {self.pub.timeout:g}s "
                f"when asked to {self.doing}; the connection was dropped"
            )
        )

    def _drain(self) -> None:
        """Publish what waits in the queue, as far as the window of unconfirmed ones allows."""
        if self.finished:
            return
        inflight = self.inflight
        pub = self.pub
        batch = pub.take_batch(self, pub.max_in_flight - len(inflight), not inflight)
        if batch:
            self._send(batch)

    def _send(self, batch: Collection[Message]) -> None:
        publish = self.channel.basic_publish
        inflight = self.inflight
        now = time.monotonic()
        buffers = getattr(self.conn._transport, "_tx_buffers", None)  # pika 1.x internals
        if not isinstance(buffers, deque):
            buffers = None
        start = len(buffers) if buffers is not None else 0
        for i, m in enumerate(batch):
            try:
                publish(m[0], m[1], m[2], m[3], m[4])
            except Exception as exc:
                if self.channel.is_open and self.conn.is_open:
                    # This message cannot be encoded: nothing was sent, no tag was used.
                    error = translate_error(exc, self.pub.target, timeout=self.pub.timeout)
                    error.listener = self.pub.listener
                    call_done(m[5], None, error)
                    continue
                # The connection is going away: the rest waits, and fails with what is queued.
                self.pub.put_back(list(batch)[i:])
                break
            inflight.append(m)
        if buffers is not None:
            self._coalesce(buffers, start)
        if inflight:
            self.marks.append((self.first_tag + len(inflight) - 1, now))
            if self.timer is None:
                self.timer = self.ioloop.call_later(self.pub.timeout, self._check_timeouts)

    def _coalesce(self, buffers: deque[bytes], start: int) -> None:
        """Join the frames this batch buffered (three per message) into a few large chunks.

        pika sends each buffered chunk with its own send(), and each send releases the GIL:
        with other threads waiting for it, the I/O thread then waits up to
        ``sys.getswitchinterval()`` to get it back, per chunk.
        """
        count = len(buffers) - start
        if count < 2:
            return
        chunks = [buffers.pop() for _ in range(count)]
        chunks.reverse()
        group: list[bytes] = []
        size = 0
        for chunk in chunks:
            if size + len(chunk) > COALESCE_BYTES and group:
                buffers.append(b"".join(group))
                group, size = [], 0
            group.append(chunk)
            size += len(chunk)
        buffers.append(b"".join(group))

    def _on_confirm(self, frame: Any) -> None:
        """An ack or nack for one delivery tag, or for all up to it (``multiple``)."""
        method = frame.method
        inflight = self.inflight
        first = self.first_tag
        tag = method.delivery_tag
        if type(method) is not _ACK or self.returns or not (method.multiple or tag == first):
            first = self._settle(method, first)  # a nack, a return pending, or out of order
        else:  # the common case, kept lean: acks of the oldest messages in flight
            count = min(tag - first + 1, len(inflight))
            popleft = inflight.popleft
            for _ in range(count):
                m = popleft()
                if m is not None:
                    try:
                        m[5]("confirmed", None)
                    except Exception:
                        logger.exception("a RabbitMQ delivery callback raised")
            first += max(count, 0)
        while inflight and inflight[0] is None:
            inflight.popleft()
            first += 1
        self.first_tag = first
        marks = self.marks
        while marks and marks[0][0] < first:
            marks.popleft()
        if not inflight and self.returns:
            self.returns.clear()
        pub = self.pub
        if pub.drain_due or pub.closing:
            self._drain()

    def _settle(self, method: Any, first: int) -> int:
        """Resolve what a confirm other than a plain in-order ack covers (a nack, an ack while
        returns are pending, one out of order); return the tag of the oldest left in flight
        (``first`` unless it resolved from the start)."""
        inflight = self.inflight
        tag = method.delivery_tag
        ack = type(method) is _ACK
        if method.multiple or tag == first:
            count = min(tag - first + 1, len(inflight))
            popleft = inflight.popleft
            for k in range(count):
                m = popleft()
                if m is not None:
                    self._resolve(m, first + k, ack)
            return first + max(count, 0)
        if 0 < tag - first < len(inflight):  # out of order: resolve it where it is
            m = inflight[tag - first]
            inflight[tag - first] = None
            if m is not None:
                self._resolve(m, tag, ack)
        return first

    def _resolve(self, m: Message, tag: int, ack: bool) -> None:
        pub = self.pub
        exc: Exception | None = None
        if not ack:
            exc = pe.NackError([])
        elif m[4] and self.returns:
            body = m[2]
            key = (m[0], m[1], body.encode() if isinstance(body, str) else bytes(body))
            hit = self.returns.get(key)
            if hit is not None and tag <= hit[1]:
                exc = pe.UnroutableError([hit[0]])
        if exc is None:
            call_done(m[5], "confirmed", None)
            return
        error = translate_error(exc, pub.target, timeout=pub.timeout)
        error.listener = pub.listener
        call_done(m[5], None, error)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        # A return carries no delivery tag: it marks every message in flight with the same
        # exchange, routing key and body (its own ack comes after it). Marking one that was in
        # fact routed makes it retried (a duplicate); never a returned one counted delivered.
        last = self.first_tag + len(self.inflight) - 1
        returns = self.returns
        returns[(method.exchange, method.routing_key, body)] = (
            ReturnedMessage(method, properties, body),
            last,
        )
        if len(returns) > 2 * self.pub.max_in_flight:
            for key in [k for k, v in returns.items() if v[1] < self.first_tag]:
                del returns[key]

    def _check_timeouts(self) -> None:
        """Fail what waited ``timeout`` for a confirm, and drop the connection that owes it."""
        self.timer = None
        if self.finished or not self.inflight:
            return
        marks, first = self.marks, self.first_tag
        while marks and marks[0][0] < first:
            marks.popleft()
        timeout = self.pub.timeout
        left = (marks[0][1] + timeout - time.monotonic()) if marks else 0.0
        if left > 0:
            self.timer = self.ioloop.call_later(left, self._check_timeouts)
            return
        error = translate_error(ConfirmTimeout("no confirm"), self.pub.target, timeout=timeout)
        self._fail_inflight(error)
        self._drop(
            ConnectError(
                f"the connection to RabbitMQ at {self.pub.target} was dropped (no publisher "
                f"confirm within {timeout:g}s) before this message was sent"
            )
        )

    def _drop(self, error: DeliveryError) -> None:
        """Tear the connection down now; what is left fails with ``error``."""
        if self.finished:
            return
        self.ready = False  # publish nothing more on it
        self.loss = self.loss or error
        if not self.conn.is_closed:
            self.conn._terminate_stream(pe.AMQPConnectionError(error.message))

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if self.finished or self.by_us:
            return
        self.ready = False
        if isinstance(reason, pe.ChannelClosedByBroker):
            self.channel_reason = reason
        self._close_connection(self.pub.timeout)  # one connection, one channel

    def _close_connection(self, grace: float) -> None:
        conn = self.conn
        if conn.is_closing or conn.is_closed:
            return
        if self.timer is not None:
            self.ioloop.remove_timeout(self.timer)
        self.timer = self.ioloop.call_later(
            grace,
            lambda: self._drop(
                ConnectError(f"RabbitMQ at {self.pub.target} did not answer the close")
            ),
        )
        conn.close()

    def _shutdown(self, grace: float) -> None:
        self.by_us = True
        if not self.finished:
            self._close_connection(grace)

    def _on_open_error(self, conn: Any, exc: BaseException) -> None:
        self._finish(exc, connect_failed=True)

    def _on_closed(self, conn: Any, reason: BaseException) -> None:
        self._finish(reason, connect_failed=not self.opened)

    def _error(self, reason: BaseException, connect_failed: bool) -> DeliveryError:
        pub = self.pub
        if self.by_us and pub.closing:
            return ConnectError(
                f"the publisher to RabbitMQ at {pub.target} was closed before the broker "
                "confirmed this message"
            )
        if self.loss is not None:
            return self.loss
        cause = self.channel_reason or reason
        if connect_failed and isinstance(cause, ValueError):
            # pika's connector on a socket the peer reset at once ("Expected connected socket,
            # but getpeername() failed"): a failed connect, like a refused one.
            refused = ConnectError(f"cannot connect to RabbitMQ at {pub.target}: {cause}")
            refused.__cause__ = cause
            return refused
        # Until it is open, the connection is bounded by stack_timeout (the URL may set it).
        timeout = pub.parameters.stack_timeout if self.doing == "connect" else pub.timeout
        error = translate_error(cause, pub.target, timeout=timeout, doing=self.doing)
        if not connect_failed and not error.transient:
            # Lost after it was set up: this message's fate is unknown, not refused.
            error = ConnectError(
                f"{error.message}; the channel is gone, messages not yet confirmed may or may "
                "not be queued"
            )
        error.__cause__ = cause
        return error

    def _finish(self, reason: BaseException, connect_failed: bool) -> None:
        """The connection is gone: fail what is in flight and waiting, end the I/O loop."""
        if self.finished:
            return
        self.finished = True
        self.ready = False
        if self.timer is not None:
            self.ioloop.remove_timeout(self.timer)
            self.timer = None
        pub = self.pub
        error = self._error(reason, connect_failed)
        queued = pub.ended(self)
        lost = sum(m is not None for m in self.inflight)
        if lost or queued:
            logger.warning(
                "RabbitMQ at %s: %s; %d unconfirmed and %d waiting messages failed",
                *(pub.target, error.message, lost, len(queued)),
            )
        else:
            logger.info("RabbitMQ at %s: connection ended: %s", pub.target, error.message)
        if self.opened and self.channel_reason is not None:
            self._refuse_missing_exchange(self.channel_reason)
        self._fail_inflight(error)
        name = pub.listener
        for m in queued:
            call_done(m[5], None, clone_error(error, name))
        self.flushed.set()
        self.ioloop.stop()

    def _refuse_missing_exchange(self, reason: Any) -> None:
        """The broker closed the channel for a publish to a missing exchange: the messages in
        flight to it were not queued, so they are Rejected (as by ``deliver``), not retried.
        """
        found = _NO_EXCHANGE.match(reason.reply_text or "") if reason.reply_code == 404 else None
        if found is None:
            return
        exchange = found.group(1)
        refused = translate_error(reason, self.pub.target, doing=f"publish to {exchange!r}")
        refused.__cause__ = reason
        kept: deque[Message | None] = deque()
        for m in self.inflight:
            if m is not None and m[0] == exchange:
                call_done(m[5], None, clone_error(refused, self.pub.listener))
                m = None
            kept.append(m)
        self.inflight = kept

    def _fail_inflight(self, error: DeliveryError) -> None:
        inflight, self.inflight = self.inflight, deque()
        self.first_tag += len(inflight)
        self.marks.clear()
        listener = self.pub.listener
        for m in inflight:
            if m is not None:
                call_done(m[5], None, clone_error(error, listener))
