"""Translating what a listener's function raises into eventisc's errors, once, where it is
called: the retry policy then sees the same failure classes as for every kind (``connect``,
``timeout``, ``error``), and the error names the function, the exception's type and text."""

from __future__ import annotations

from ...errors import ConnectError, DeliveryError, DeliveryTimeout, EventiscError

__all__ = ["TRANSLATIONS", "translate_error"]

#: Python's exceptions that say something eventisc has a class for, most specific first; any
#: other exception is a :class:`DeliveryError` (``retry_on: [error]`` retries it).
TRANSLATIONS: tuple[tuple[type[BaseException], type[DeliveryError]], ...] = (
    (TimeoutError, DeliveryTimeout),
    (ConnectionError, ConnectError),
)


def translate_error(exc: Exception, function: str) -> EventiscError:
    """The eventisc error for ``exc``, raised by ``function`` (its name, for the message).

    An :class:`EventiscError` the function raised itself (a ``DeliveryError`` it chose, a
    ``TemplateError``) is returned as it is.
    """
    if isinstance(exc, EventiscError):
        return exc
    error = DeliveryError
    for classes, translated in TRANSLATIONS:
        if isinstance(exc, classes):
            error = translated
            break
    text = str(exc)
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return error(f"{function} raised {detail}")
