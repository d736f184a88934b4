"""The exceptions the drivers can raise, for the tests of each kind's ``translate_error``.

- :func:`classes_of`: the exception classes a module defines (not those it imports, not its
  warnings), so a test notices a class a new driver version adds;
- :func:`instance`: one exception of a class, made with the first argument shape it accepts;
- :func:`raised_from`: an exception raised ``from`` a cause, as kombu re-raises a driver's;
- :func:`http_errors`, :func:`celery_errors`, :func:`rabbit_errors`: one instance of every
  exception class the drivers of that kind define, plus the socket and TLS errors below
  them, bare and in the envelopes the drivers wrap them in.

Only a kind's tests import its drivers; nothing here imports a driver before it is asked for.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Mapping
from types import ModuleType

__all__ = [
    "SOCKET_ERRORS",
    "celery_errors",
    "classes_of",
    "http_errors",
    "instance",
    "instances",
    "rabbit_errors",
    "raised_from",
]

#: What sockets raise below every driver (``socket.timeout`` is ``TimeoutError``).
SOCKET_ERRORS: tuple[BaseException, ...] = (
    OSError(113, "No route to host"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionAbortedError(103, "Software caused connection abort"),
    BrokenPipeError(32, "Broken pipe"),
    TimeoutError("timed out"),
    socket.gaierror(-2, "Name or service not known"),
    socket.herror(1, "Unknown host"),
    EOFError(),
)


class _PartialResponse:
    """What urllib3's InvalidChunkLength reads of the response it failed in."""

    length_remaining = None

    def tell(self) -> int:
        return 0


# The argument shapes driver exceptions take, tried in turn: (message), (), (pool or
# connection, message), (reply code, reply text), (pool, url, message), (host, connection,
# reason), (returned messages), (message, document, position) of a JSON decoding error,
# (response, chunk length) of a bad chunk, (bytes read, bytes expected) of a short read, the
# "slot host:port" reply of a Redis cluster redirection.
_SHAPES: tuple[tuple[object, ...], ...] = (
    ("detail",),
    (),
    (None, "detail"),
    (320, "detail"),
    (None, "/", "detail"),
    ("h", None, OSError("detail")),
    ([],),
    ("detail", "{", 0),
    (_PartialResponse(), b"zz"),
    (0, 1),
    ("3999 127.0.0.1:6381",),
)


def classes_of(module: ModuleType) -> list[type[Exception]]:
    """The exception classes ``module`` defines (warnings left out), by name."""
    return sorted(
        (
            cls
            for cls in vars(module).values()
            if isinstance(cls, type)
            and issubclass(cls, Exception)
            and not issubclass(cls, Warning)
            and cls.__module__ == module.__name__
        ),
        key=lambda cls: cls.__name__,
    )


def instance(cls: type[BaseException]) -> BaseException:
    """One exception of class ``cls``: made with the first argument shape it accepts whose
    ``str()`` and ``repr()`` work, else the first it accepts at all. Raises TypeError when it
    takes none (add the shape to ``_SHAPES``)."""
    made: BaseException | None = None
    for args in _SHAPES:
        try:
            exc = cls(*args)
        except Exception:
            continue
        try:
            str(exc), repr(exc)
        except Exception:
            made = made or exc
            continue
        return exc
    if made is None:
        raise TypeError(f"no argument shape makes a {cls.__module__}.{cls.__qualname__}")
    return made


def instances(
    classes: Iterable[type[BaseException]], made: Mapping[type, BaseException] | None = None
) -> list[BaseException]:
    """One exception of each class: the one in ``made`` (for a class whose arguments must be
    real values), else :func:`instance`'s."""
    made = made or {}
    return [made[cls] if cls in made else instance(cls) for cls in classes]


def raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    """``exc`` raised ``from cause``, as kombu's ``_reraise_as_library_errors`` does."""
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


def _tls_errors() -> list[BaseException]:
    return instances(cls for cls in classes_of(ssl) if issubclass(cls, ssl.SSLError))


def http_errors() -> list[BaseException]:
    """requests', urllib3's, socket and TLS errors; each also inside the ConnectionError
    (around urllib3's MaxRetryError) in which requests raises what urllib3 met."""
    import requests
    import urllib3

    bare = [
        *instances(classes_of(requests.exceptions)),
        *instances(classes_of(urllib3.exceptions)),
        *SOCKET_ERRORS,
        *_tls_errors(),
    ]
    wrapped = [
        requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason=exc))
        for exc in bare
    ]
    return bare + wrapped


def celery_errors() -> list[BaseException]:
    """kombu's, py-amqp's, redis-py's and socket errors; each also raised from in kombu's
    OperationalError, as kombu re-raises a transport's errors."""
    import amqp.exceptions
    import kombu.exceptions
    import redis.exceptions

    bare = [
        *instances(classes_of(kombu.exceptions)),
        *instances(classes_of(amqp.exceptions)),
        *instances(classes_of(redis.exceptions)),
        *SOCKET_ERRORS,
    ]
    wrapped = [raised_from(kombu.exceptions.OperationalError(str(exc)), exc) for exc in bare]
    return bare + wrapped


def rabbit_errors() -> list[BaseException]:
    """pika's errors and its connection workflow's, socket and TLS errors, the pool's
    timeout; each also inside the failed workflow in which a SelectConnection reports it."""
    import pika
    import pika.adapters.utils.connection_workflow as cw
    import pika.exceptions as pe

    from eventisc.listeners.rabbit import ConfirmTimeout
    from eventisc.pool import PoolTimeout

    # What the broker returned (basic.return) for an unroutable or nacked message, and the
    # reply code and text of a closed connection or channel.
    returned = [
        pika.adapters.blocking_connection.ReturnedMessage(
            pika.spec.Basic.Return(312, "NO_ROUTE", "ex", "rk"), pika.BasicProperties(), b""
        )
    ]
    made: dict[type, BaseException] = {
        cls: cls(returned) for cls in (pe.UnroutableError, pe.NackError)
    }
    for cls in classes_of(pe):
        if issubclass(cls, (pe.ConnectionClosed, pe.ChannelClosed)):
            made[cls] = cls(320, "CONNECTION_FORCED")
    bare = [
        *instances(classes_of(pe), made),
        *instances(classes_of(cw)),
        *SOCKET_ERRORS,
        *_tls_errors(),
        ConfirmTimeout("no confirm"),
        PoolTimeout("no free connection"),
    ]
    wrapped = [cw.AMQPConnectionWorkflowFailed([exc]) for exc in bare]
    return bare + wrapped
