"""Translating the ``rabbit`` kind's driver errors (pika, sockets, TLS, the pool) into eventisc's.

:func:`translate_error` first unwraps the envelopes of pika's connection workflow (a failed
workflow carries the error of its last attempt, a failed phase the error of that phase), then
looks the error up in :data:`_TRANSLATIONS`. What is transient (``ConnectError``,
``DeliveryTimeout``: the retry policy retries it, the circuit breaker counts it) and what is
not is decided there, class by class. :class:`ConfirmTimeout`, the pika-level error the kind
raises itself when a confirm does not come in time, is defined here for the table to name it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika.adapters.utils.connection_workflow as cw
import pika.exceptions as pe

from ...errors import ConnectError, DeliveryError, DeliveryTimeout, Rejected
from ...pool import PoolTimeout

__all__ = ["ConfirmTimeout", "clone_error", "translate_error"]


class ConfirmTimeout(pe.AMQPConnectionError):
    """No publisher confirm came within the listener's ``timeout``; the connection was closed."""


@dataclass(frozen=True)
class _Where:
    """What a message says about where the error happened."""

    at: str  # "RabbitMQ at host:port"
    target: str  # "host:port"
    limit: str  # " within 3s", or " in time"
    doing: str  # "publish", "declare queue 'q'", ...
    connecting: bool  # the error came out of pika's connection workflow


def translate_error(
    exc: BaseException,
    where: str,
    *,
    timeout: float | tuple[float, float] | None = None,
    doing: str = "publish",
) -> DeliveryError:
    """Map a pika (or pool) exception to the eventisc error for it; ``where`` is the broker's
    host:port, ``doing`` what was being done ("publish", "declare queue 'q'"), ``timeout``
    the seconds it was given (of a (connect, read) pair, the longer one).

    ConnectError: connecting failed (refused, unreachable, the TCP, TLS or AMQP handshake did
    not complete in time) or the connection/channel died. DeliveryTimeout: no free pooled
    connection, no confirm in time, connection blocked too long. Rejected: the broker refused
    (login, vhost, nack, unroutable, missing or mismatched queue/exchange). DeliveryError:
    anything else, which retrying will not fix (TLS setup, a local encoding problem, an
    unexpected error). The caller chains it: ``raise translate_error(exc, ...) from exc``.
    """
    inner = _unwrap(exc)
    if isinstance(timeout, tuple):
        timeout = max(timeout)
    limit = f" within {timeout:g}s" if timeout is not None else " in time"
    w = _Where(f"RabbitMQ at {where}", where, limit, doing, inner is not exc)
    for classes, make in _TRANSLATIONS:
        if isinstance(inner, classes):
            return make(inner, w)
    return _other(inner, w)


def clone_error(error: DeliveryError, listener: str | None, suffix: str = "") -> DeliveryError:
    """A new error like ``error`` for one message (errors are raised and chained per message)."""
    copy = type(error)(error.message + suffix, listener)
    copy.__cause__ = error.__cause__
    return copy


def _unwrap(exc: BaseException) -> BaseException:
    """The error that says what happened, out of pika's connection-workflow envelopes.

    ``SelectConnection`` reports a failed connect as ``AMQPConnectionWorkflowFailed`` (the
    errors of each attempt; the last one counts, as ``BlockingConnection`` does) around a
    phase error (TCP connect, TLS setup, AMQP handshake) around the real one, sometimes
    inside a plain ``AMQPConnectionError``.
    """
    for _ in range(8):  # envelopes nest a few levels deep at most; never loop forever
        if type(exc) is pe.AMQPConnectionError and exc.args:
            inner = exc.args[0]
        elif isinstance(exc, cw.AMQPConnectionWorkflowFailed) and exc.exceptions:
            inner = exc.exceptions[-1]
        elif isinstance(exc, cw.AMQPConnectorPhaseErrorBase):
            inner = exc.exception
        else:
            break
        if not isinstance(inner, cw.AMQPConnectorException | OSError | pe.AMQPError):
            break
        exc = inner
    return exc


def _os_error(exc: OSError, w: _Where) -> DeliveryError:
    if w.connecting or isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot connect to {w.at}: {_text(exc)}")
    return ConnectError(f"connection to {w.at} failed: {_text(exc)}")


def _text(exc: BaseException) -> str:
    try:
        return str(exc) or repr(exc)
    except Exception:  # pika's reprs can fail (an AMQPConnectionWorkflowFailed without errors)
        return type(exc).__name__


def _reply(exc: Any) -> str:
    return f"{exc.reply_code} {exc.reply_text}"


def _other(exc: BaseException, w: _Where) -> DeliveryError:
    return DeliveryError(f"cannot {w.doing} on {w.at}: {type(exc).__name__}: {_text(exc)}")


def _closed_by_broker(exc: Any, w: _Where) -> DeliveryError:
    if exc.reply_code in (403, 530):
        return Rejected(f"{w.at} refused the connection: {_reply(exc)}")
    return ConnectError(f"{w.at} closed the connection: {_reply(exc)}")


def _unroutable(exc: Any, w: _Where) -> DeliveryError:
    returned = exc.messages[0].method if exc.messages else None
    route = "" if returned is None else (
        f" (exchange {returned.exchange!r}, routing key {returned.routing_key!r}: "
        f"{returned.reply_text})"
    )  # fmt: skip
    return Rejected(
        f"{w.at} returned the message as unroutable{route}: no queue is bound for it and "
        "mandatory is on"
    )


def _channel_closed_by_broker(exc: Any, w: _Where) -> DeliveryError:
    if exc.reply_code == 406:
        return Rejected(
            f"{w.at} refused to {w.doing}: {_reply(exc)}. It already exists with other "
            "arguments: make queue_kwargs match it, or delete it"
        )
    if exc.reply_code in (403, 404, 405):
        return Rejected(f"{w.at} refused to {w.doing}: {_reply(exc)}")
    return ConnectError(f"{w.at} closed the channel: {_reply(exc)}")


#: What did not complete, by what pika's text about a connect that timed out says.
_PHASES = {
    "Timeout while connecting socket": ("no TCP connection", ""),
    "Timeout while setting up transport": (
        "it accepted the TCP connection but did not complete the TLS handshake",
        " (is the port a TLS port? amqps:// needs one, usually 5671)",
    ),
    "Timeout during AMQP handshake": (
        "it accepted the TCP connection but did not complete the AMQP handshake",
        " (a hung or overloaded broker, or a proxy in front of it that does not answer)",
    ),
}
# SelectConnection ends an AMQP handshake that timed out by closing the connection: its
# ConnectionOpenAborted quotes this text.
_PHASES["Timeout while setting up AMQP"] = _PHASES["Timeout during AMQP handshake"]


def _timed_out(exc: BaseException, w: _Where) -> DeliveryError:
    """A connect that did not complete in time (pika's ``stack_timeout``)."""
    text = _text(exc)
    what, hint = next(
        (phase for start, phase in _PHASES.items() if start in text),
        ("connecting did not complete", ""),
    )
    return ConnectError(f"cannot connect to {w.at}: {what}{w.limit}{hint}")


def _open_aborted(exc: BaseException, w: _Where) -> DeliveryError:
    if any(start in _text(exc) for start in _PHASES):
        return _timed_out(exc, w)
    return ConnectError(f"cannot connect to {w.at}: {_text(exc)}")


def _tls_failed(exc: BaseException, w: _Where) -> DeliveryError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = "check ssl_options in the URL (ca_certs, server_hostname)"
    else:
        hint = "is it a TLS port? amqps:// needs one (usually 5671), amqp:// a plain one"
    return DeliveryError(
        f"TLS with {w.at} failed: {_text(exc)}; {hint}. Retrying will not fix this"
    )


def _make(error: type[DeliveryError], message: str) -> Callable[[Any, _Where], DeliveryError]:
    """A translator giving ``error(message)``; ``message`` may use {at}, {target}, {limit},
    {doing}, {text} (the exception's text) and {reply} (its reply code and text)."""

    def make(exc: Any, w: _Where) -> DeliveryError:
        reply = _reply(exc) if hasattr(exc, "reply_code") else ""
        values = {"at": w.at, "target": w.target, "limit": w.limit, "doing": w.doing}
        return error(message.format(**values, text=_text(exc), reply=reply))

    return make


_Translate = Callable[[Any, _Where], DeliveryError]

#: (exception classes, translator), first match wins: subclasses come before their bases.
#: tests/test_rabbit.py checks that every exception class of pika.exceptions and of pika's
#: connection workflow is decided here or deliberately left to the last resort (_other).
_TRANSLATIONS: tuple[tuple[tuple[type[BaseException], ...], _Translate], ...] = (
    # -- DeliveryTimeout: the broker (or the pool) did not answer in time -------------------
    ((PoolTimeout,), _make(DeliveryTimeout, "no free connection to {at}{limit}: {text}")),
    ((ConfirmTimeout,), _make(
        DeliveryTimeout,
        "{at} did not confirm the message{limit}; the connection was dropped (the message "
        "may or may not be queued)",
    )),
    ((pe.ConnectionBlockedTimeout,), _make(
        DeliveryTimeout,
        "{at} blocked the connection (memory or disk alarm) for longer than "
        "blocked_connection_timeout; the connection was dropped",
    )),
    # -- connection level: refusals are Rejected, the rest ConnectError ---------------------
    ((pe.AMQPHeartbeatTimeout,), _make(
        ConnectError, "connection to {at} missed heartbeats: {text}"
    )),
    ((pe.AuthenticationError, pe.ProbableAuthenticationError), _make(
        Rejected, "{at} refused the login ({text}); check the user and password"
    )),
    ((pe.ProbableAccessDeniedError,), _make(
        Rejected, "{at} denied access to the virtual host: {text}"
    )),
    ((pe.ConnectionClosedByBroker,), _closed_by_broker),
    ((pe.ConnectionClosed,), _make(ConnectError, "connection to {at} was closed: {reply}")),
    ((pe.StreamLostError,), _make(ConnectError, "connection to {at} lost: {text}")),
    ((pe.ConnectionOpenAborted,), _open_aborted),
    ((pe.IncompatibleProtocolError,), _make(
        ConnectError, "{target} does not speak AMQP 0-9-1: {text}"
    )),
    ((pe.AMQPConnectionError,), _make(ConnectError, "cannot connect to {at}: {text}")),
    # -- pika's connection workflow: a connect that did not complete is transient -----------
    ((cw.AMQPConnectorStackTimeout,), _timed_out),
    ((cw.AMQPConnectorAborted, cw.AMQPConnectionWorkflowAborted), _make(
        ConnectError, "the connection attempt to {at} was aborted before it was set up"
    )),
    ((cw.AMQPConnectorWrongState, cw.AMQPConnectionWorkflowWrongState), _other),  # pika misuse
    ((cw.AMQPConnectorException,), _make(ConnectError, "cannot connect to {at}: {text}")),
    # -- channel level ----------------------------------------------------------------------
    ((pe.UnroutableError,), _unroutable),
    ((pe.NackError,), _make(Rejected, "{at} refused the message (nack)")),
    ((pe.ChannelClosedByBroker,), _channel_closed_by_broker),
    ((pe.AMQPChannelError,), _make(ConnectError, "channel to {at} unusable: {text}")),
    # -- frames: what we could not encode is local, what we could not read broke the link ---
    ((pe.InvalidFieldTypeException, pe.UnsupportedAMQPFieldException), _other),
    ((pe.ProtocolSyntaxError,), _make(ConnectError, "connection to {at} failed: {text}")),
    # -- TLS: a broken link is transient, a failed setup is not ---------------------------
    ((ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError), _os_error),
    ((ssl.SSLError,), _tls_failed),
    ((OSError,), _os_error),  # refused, reset, unreachable, DNS: the network, not us
)  # fmt: skip
