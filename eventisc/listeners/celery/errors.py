"""Translating what Celery's ``send_task`` raises (kombu, py-amqp, redis-py, sockets) into
eventisc's errors.

kombu wraps the driver's error in ``OperationalError``, so :func:`translate_error` reads the
chain of causes and looks each one up in :data:`_TRANSLATIONS`: the most direct cause that
says something wins. What only the exception raised itself can say is looked up before the
chain (:data:`_RAISED`) and after it, when no cause said anything (:data:`_LAST_RESORT`).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import amqp.exceptions
import kombu.exceptions

from ...errors import (
    ConnectError,
    DeliveryError,
    DeliveryTimeout,
    EventiscError,
    Rejected,
    TemplateError,
)

__all__ = ["translate_error"]


class _Translation(NamedTuple):
    """One row of a translation table."""

    #: Driver exception classes; "module.Class" names a class of a driver eventisc never
    #: imports itself (redis-py): it counts only once something else has imported it.
    classes: tuple[type[BaseException] | str, ...]
    #: The eventisc error, and its message: ``{where}``, ``{detail}`` ("Class: text") and
    #: ``{text}`` (the exception's text) are filled in.
    error: type[EventiscError]
    message: str
    #: Words the exception's text must hold for the row to match ("" matches any).
    text: str = ""


_REFUSED = "{where} refused the task ({detail})"
_NO_ANSWER = "{where} did not answer in time ({detail})"

#: Checked on the exception ``send_task`` raised, before its causes.
_RAISED: tuple[_Translation, ...] = (
    _Translation(
        (kombu.exceptions.EncodeError,),
        TemplateError,
        "cannot serialize the task's arguments: {text}",
    ),
)

#: Checked on the exception and each of its causes in turn, first match wins: subclasses come
#: before their bases (redis' AuthenticationError is one of its ConnectionErrors).
_TRANSLATIONS: tuple[_Translation, ...] = (
    _Translation(
        (socket.timeout, TimeoutError, kombu.exceptions.LimitExceeded,
         "redis.exceptions.TimeoutError"),
        DeliveryTimeout, _NO_ANSWER,
    ),
    # py-amqp reports a read or write that timed out as a recoverable connection error.
    _Translation(
        (amqp.exceptions.RecoverableConnectionError,), DeliveryTimeout, _NO_ANSWER, "timed out"
    ),
    _Translation(
        (amqp.exceptions.MessageNacked,), Rejected,
        "{where} refused the task (publisher confirm nack)",
    ),
    _Translation(
        (amqp.exceptions.NotAllowed, amqp.exceptions.ChannelError,
         "redis.exceptions.AuthenticationError", "redis.exceptions.ResponseError"),
        Rejected, _REFUSED,
    ),
    _Translation(
        (amqp.exceptions.ConnectionError, OSError, EOFError, "redis.exceptions.ConnectionError"),
        ConnectError, "cannot reach {where} ({detail})",
    ),
)  # fmt: skip

#: Checked on the exception raised when none of its causes matched.
_LAST_RESORT: tuple[_Translation, ...] = (
    _Translation(
        (kombu.exceptions.OperationalError,), ConnectError, "cannot reach {where} ({detail})"
    ),
    _Translation((BaseException,), DeliveryError, "sending the task to {where} failed ({detail})"),
)


def translate_error(
    exc: BaseException,
    where: str,
    *,
    timeout: float | tuple[float, float] | None = None,
    doing: str = "send the task",
) -> EventiscError:
    """The eventisc error for what ``send_task`` raised (the caller raises it ``from exc``);
    ``where`` names the broker ("broker amqp://guest:***@host//, queue q").

    Timeouts give :class:`DeliveryTimeout`, connection errors :class:`ConnectError`, a
    refusal by the broker (publisher-confirm nack, access refused, channel error, redis error
    reply) :class:`Rejected`, arguments the serializer cannot encode :class:`TemplateError`,
    anything else :class:`DeliveryError`; an :class:`EventiscError` is returned as it is.
    ``timeout`` and ``doing`` are accepted for the signature every kind shares, and not used.
    """
    if isinstance(exc, EventiscError):
        return exc
    found = (
        _lookup((exc,), _RAISED, where)
        or _lookup(_causes(exc), _TRANSLATIONS, where)
        or _lookup((exc,), _LAST_RESORT, where)
    )
    assert found is not None  # the last resort matches any exception
    return found


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it, and so on (each once)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        yield current
        current = current.__cause__ or current.__context__


def _lookup(
    candidates: Iterable[BaseException], table: tuple[_Translation, ...], where: str
) -> EventiscError | None:
    """The error made by the first row of ``table`` that matches a candidate, the candidates
    taken in turn; None when none matches."""
    for exc in candidates:
        text = str(exc)
        for row in table:
            if isinstance(exc, _classes(row.classes)) and row.text in text:
                detail = f"{type(exc).__name__}: {text}"
                return row.error(row.message.format(where=where, detail=detail, text=text))
    return None


def _classes(classes: tuple[type[BaseException] | str, ...]) -> tuple[type[BaseException], ...]:
    """``classes`` with each "module.Class" name resolved, or left out when its module is not
    imported."""
    found: list[type[BaseException]] = []
    for cls in classes:
        if isinstance(cls, str):
            module, _, name = cls.rpartition(".")
            loaded = sys.modules.get(module)
            if loaded is None:
                continue
            cls = getattr(loaded, name)
        found.append(cls)
    return tuple(found)
