"""The ``rabbit`` kind's pooled connections (synchronous delivery), and how pika's waits on
them are bounded.

A ``BlockingConnection`` waits for a publisher confirm (or a close) without limit; the wait is
bounded by a timer on the connection's I/O loop that tears the connection down after
``timeout`` seconds, the way pika's own heartbeat checker ends a dead connection.
"""

from __future__ import annotations

import logging
from typing import Any

import pika.exceptions as pe

from .errors import ConfirmTimeout

__all__ = [
    "PooledConnection",
    "breaks_connection",
    "close_connection",
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
