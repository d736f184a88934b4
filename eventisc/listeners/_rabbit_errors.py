"""Translating pika's errors for the ``rabbit`` kind into eventisc's."""

from __future__ import annotations

from typing import Any

import pika.exceptions as pe

from ..errors import ConnectError, DeliveryError, DeliveryTimeout, Rejected
from ..pool import PoolTimeout
from ._rabbit_connection import ConfirmTimeout

__all__ = ["translate_error"]


def translate_error(
    exc: BaseException, target: str, *, timeout: float | None = None, doing: str = "publish"
) -> DeliveryError:
    """Map a pika (or pool) exception to the eventisc error for it; ``target`` is host:port.

    ConnectError: connecting failed or the connection/channel died. DeliveryTimeout: no free
    pooled connection, no confirm in time, connection blocked too long. Rejected: the broker
    refused (login, vhost, nack, unroutable, missing or mismatched queue/exchange).
    DeliveryError: anything else (a local encoding problem, an unexpected error).
    """
    at = f"RabbitMQ at {target}"
    limit = f" within {timeout:g}s" if timeout is not None else " in time"
    if isinstance(exc, PoolTimeout):
        return DeliveryTimeout(f"no free connection to {at}{limit}: {exc}")
    if isinstance(exc, ConfirmTimeout):
        return DeliveryTimeout(
            f"{at} did not confirm the message{limit}; the connection was dropped (the "
            "message may or may not be queued)"
        )
    if isinstance(exc, pe.ConnectionBlockedTimeout):
        return DeliveryTimeout(
            f"{at} blocked the connection (memory or disk alarm) for longer than "
            "blocked_connection_timeout; the connection was dropped"
        )
    if isinstance(exc, pe.AMQPHeartbeatTimeout):
        return ConnectError(f"connection to {at} missed heartbeats: {_text(exc)}")
    if isinstance(exc, (pe.AuthenticationError, pe.ProbableAuthenticationError)):
        return Rejected(f"{at} refused the login ({_text(exc)}); check the user and password")
    if isinstance(exc, pe.ProbableAccessDeniedError):
        return Rejected(f"{at} denied access to the virtual host: {_text(exc)}")
    if isinstance(exc, pe.ConnectionClosedByBroker):
        if exc.reply_code in (403, 530):
            return Rejected(f"{at} refused the connection: {_reply(exc)}")
        return ConnectError(f"{at} closed the connection: {_reply(exc)}")
    if isinstance(exc, pe.ConnectionClosed):
        return ConnectError(f"connection to {at} was closed: {_reply(exc)}")
    if isinstance(exc, pe.StreamLostError):
        return ConnectError(f"connection to {at} lost: {_text(exc)}")
    if isinstance(exc, pe.IncompatibleProtocolError):
        return ConnectError(f"{target} does not speak AMQP 0-9-1: {_text(exc)}")
    if isinstance(exc, pe.AMQPConnectionError):
        return ConnectError(f"cannot connect to {at}: {_text(exc)}")
    if isinstance(exc, pe.UnroutableError):
        returned = exc.messages[0].method if exc.messages else None
        route = "" if returned is None else (
            f" (exchange {returned.exchange!r}, routing key {returned.routing_key!r}: "
            f"{returned.reply_text})"
        )  # fmt: skip
        return Rejected(
            f"{at} returned the message as unroutable{route}: no queue is bound for it and "
            "mandatory is on"
        )
    if isinstance(exc, pe.NackError):
        return Rejected(f"{at} refused the message (nack)")
    if isinstance(exc, pe.ChannelClosedByBroker):
        if exc.reply_code == 406:
            return Rejected(
                f"{at} refused to {doing}: {_reply(exc)}. It already exists with other "
                "arguments: make queue_kwargs match it, or delete it"
            )
        if exc.reply_code in (403, 404, 405):
            return Rejected(f"{at} refused to {doing}: {_reply(exc)}")
        return ConnectError(f"{at} closed the channel: {_reply(exc)}")
    if isinstance(exc, pe.AMQPChannelError):  # ChannelClosed, ChannelWrongStateError, ...
        return ConnectError(f"channel to {at} unusable: {_text(exc)}")
    if isinstance(exc, (pe.ProtocolSyntaxError, OSError)) and not isinstance(
        exc, (pe.InvalidFieldTypeException, pe.UnsupportedAMQPFieldException)
    ):
        return ConnectError(f"connection to {at} failed: {_text(exc)}")
    return DeliveryError(f"cannot {doing} on {at}: {type(exc).__name__}: {_text(exc)}")


def _text(exc: BaseException) -> str:
    return str(exc) or repr(exc)


def _reply(exc: Any) -> str:
    return f"{exc.reply_code} {exc.reply_text}"
