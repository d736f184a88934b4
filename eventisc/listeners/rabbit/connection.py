"""The ``rabbit`` kind's pooled connections (synchronous delivery), and how pika's waits on
them are bounded.

A ``BlockingConnection`` waits for a publisher confirm (or a close) without limit; the wait is
bounded by a timer on the connection's I/O loop that tears the connection down after
``timeout`` seconds, the way pika's own heartbeat checker ends a dead connection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pika.exceptions as pe

from .errors import ConfirmTimeout

__all__ = [
    "PooledConnection",
    "breaks_connection",
    "close_connection",
    "coalesce_frames",
    "connection_died",
]

logger = logging.getLogger(__name__)


class PooledConnection:
    """One pooled connection and its single channel."""

    __slots__ = ("connection", "channel", "impl")

    def __init__(self, connection: Any, channel: Any):
        self.connection = connection
        self.channel = channel
        self.impl = connection._impl  # the I/O-loop-level connection, for the timers below
        coalesce_frames(self.impl)

    def publish_confirmed(self, args: tuple[Any, ...], timeout: float) -> None:
        impl = self.impl
        timer = impl._adapter_call_later(timeout, self._confirm_timed_out)
        try:
            self.channel.basic_publish(*args)
        finally:
            impl._adapter_remove_timeout(timer)

    def _confirm_timed_out(self) -> None:
        # Ends the connection's wait: basic_publish raises this error from the I/O loop.
        self.impl._terminate_stream(ConfirmTimeout("no publisher confirm in time"))

    def probe(self) -> bool:
        """Process pending I/O without blocking (sends and reads heartbeats, reads a Close)."""
        try:
            self.connection.process_data_events(0)
        except Exception as exc:
            logger.info("dropping a dead RabbitMQ connection: %r", exc)
            return False
        return bool(self.channel.is_open)  # pika closes the channels of a closed connection

    def close(self, timeout: float) -> None:
        close_connection(self.connection, timeout)


def coalesce_frames(impl: Any) -> None:
    """Have ``impl`` (a pika connection) buffer each message's frames as one chunk.

    pika buffers a message's method, header and body frames one by one, and its transport
    sends each buffered chunk with its own ``send()``: three system calls per message, each
    releasing the interpreter lock. Joined, a message is one ``send()`` (pika 1.x internals:
    ``Connection._output_marshaled_frames``, which every frame goes through; a test guards it).
    """
    emit = impl._adapter_emit_data

    def output(frames: Sequence[bytes]) -> None:
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        impl.bytes_sent += len(data)
        impl.frames_sent += len(frames)
        emit(data)

    impl._output_marshaled_frames = output


def close_connection(connection: Any, timeout: float) -> None:
    """Close a connection, waiting at most ``timeout`` seconds for the broker's CloseOk."""
    if not connection.is_open:
        return
    impl = connection._impl

    def give_up() -> None:
        impl._terminate_stream(pe.AMQPConnectionError("closing timed out"))

    impl._adapter_call_later(timeout, give_up)
    try:
        connection.close()
    except Exception:
        logger.debug("closing a RabbitMQ connection failed", exc_info=True)


def breaks_connection(exc: BaseException) -> bool:
    """Whether the pool must drop the connection after ``exc`` (not for a refused message)."""
    return not isinstance(exc, (pe.UnroutableError, pe.NackError))


def connection_died(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection or channel died (worth one more try elsewhere)."""
    if isinstance(exc, (ConfirmTimeout, pe.ConnectionBlockedTimeout)):
        return False  # the broker may have the message: do not send it twice
    return isinstance(exc, (pe.AMQPConnectionError, pe.ChannelClosed, pe.ChannelWrongStateError))
