"""Translating the ``http`` kind's driver errors (urllib3, sockets, and requests on its path)
into eventisc's, and a failed answer (a status not counted as success) into an
:class:`HTTPStatusError`.

:func:`translate_error` looks the error up in a table (:data:`_URLLIB3_TRANSLATIONS`, and
requests' rows once requests is loaded), which decides, class by class, what is transient
(``ConnectError``, ``DeliveryTimeout``) and what is not.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import ssl
import sys
from typing import Any

import urllib3

from ...errors import ConnectError, DeliveryError, DeliveryTimeout, HTTPStatusError
from ..base import mask_url

__all__ = [
    "EXCERPT_CHARS",
    "is_transport_error",
    "parse_retry_after",
    "status_error",
    "translate_error",
]

#: Characters of a failing response's body quoted in the error.
EXCERPT_CHARS = 200

_POOL_PREFIX = re.compile(r"^\w+\(host=[^)]*\): ")


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError, *_requests_errors()))


Translations = tuple[tuple[tuple[type[BaseException], ...], type[DeliveryError], str], ...]

#: (urllib3 or socket errors, eventisc error, what happened), first match wins: subclasses
#: come first.
_URLLIB3_TRANSLATIONS: Translations = (
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError, yet means "refused".
    ((urllib3.exceptions.NewConnectionError,), ConnectError, "could not connect"),
    ((urllib3.exceptions.ConnectTimeoutError,), DeliveryTimeout, "timed out connecting"),
    (
        (urllib3.exceptions.TimeoutError, TimeoutError),
        DeliveryTimeout,
        "timed out waiting for the response",
    ),
    # Retrying does not fix a bad certificate or a TLS/plain-HTTP mismatch.
    ((urllib3.exceptions.SSLError, ssl.SSLError), DeliveryError, "TLS failed"),
    ((urllib3.exceptions.ProxyError,), ConnectError, "the proxy failed"),
    (
        (urllib3.exceptions.ProtocolError, ConnectionError),
        ConnectError,
        "could not connect or the connection broke",
    ),
    ((urllib3.exceptions.LocationValueError,), DeliveryError, "the URL cannot be sent"),
    ((urllib3.exceptions.HTTPError,), DeliveryError, ""),
)


def _requests_translations() -> Translations:
    """requests' errors (on the requests path), ahead of the urllib3 ones they may wrap."""
    import requests

    return (
        ((requests.ConnectTimeout,), DeliveryTimeout, "timed out connecting"),
        ((requests.Timeout,), DeliveryTimeout, "timed out waiting for the response"),
        ((requests.exceptions.SSLError,), DeliveryError, "TLS failed"),
        ((requests.exceptions.ProxyError,), ConnectError, "the proxy failed"),
        (
            (requests.ConnectionError, requests.exceptions.ChunkedEncodingError),
            ConnectError,
            "could not connect or the connection broke",
        ),
        ((requests.TooManyRedirects,), DeliveryError, "too many redirects"),
        (
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
            ),
            DeliveryError,
            "the URL cannot be sent",
        ),
        ((requests.RequestException,), DeliveryError, ""),
    )


def _requests_errors() -> tuple[type[BaseException], ...]:
    """requests' base error when requests is loaded (only the requests path loads it)."""
    module = sys.modules.get("requests.exceptions")
    return (module.RequestException,) if module is not None else ()


def _translations() -> Translations:
    """The table for the drivers loaded: requests' rows only once requests is."""
    global _TRANSLATIONS
    if _TRANSLATIONS is None:
        if "requests.exceptions" not in sys.modules:
            return _URLLIB3_TRANSLATIONS
        _TRANSLATIONS = _requests_translations() + _URLLIB3_TRANSLATIONS
    return _TRANSLATIONS


_TRANSLATIONS: Translations | None = None


def translate_error(
    exc: BaseException,
    where: str,
    *,
    timeout: float | tuple[float, float] | None = None,
    doing: str = "send the request",
) -> DeliveryError:
    """The eventisc error for a requests (or urllib3/socket) error; ``where`` is "POST url".

    ``timeout`` (seconds, or (connect, read) seconds) is quoted when the error is a timeout;
    ``doing`` is accepted for the signature every kind shares, and not used: ``where``
    already says what was sent.

    Timeouts are :class:`DeliveryTimeout`; failures to connect or a connection lost mid-way
    (refused, reset, DNS, proxy) :class:`ConnectError`; anything else (TLS, redirects, a bad
    URL) :class:`DeliveryError`, which retrying will not fix. Any other exception (requests
    or an auth object failing on a value it was given) is a :class:`DeliveryError` too.
    """
    if not is_transport_error(exc):
        return DeliveryError(
            f"{where}: unexpected {type(exc).__name__} while sending (check the listener's "
            f"settings): {_reason(exc)}"
        )
    matched = exc
    wrapper = isinstance(exc, _requests_errors()) and exc.args
    inner = exc.args[0] if wrapper else None
    inner = getattr(inner, "reason", inner)  # a MaxRetryError carries the real error
    if isinstance(inner, urllib3.exceptions.ReadTimeoutError):
        matched = inner  # requests reports a timeout while reading the body as a ConnectionError
    error, what = next(
        ((err, w) for classes, err, w in _translations() if isinstance(matched, classes)),
        (DeliveryError, ""),
    )
    if what == "" and isinstance(matched, OSError) and matched.errno is not None:
        # A socket error requests did not wrap; an OSError without errno is local (a CA file).
        error, what = ConnectError, "network error"
    if error is DeliveryTimeout and timeout is not None:
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        what += f" ({connect if what.endswith('connecting') else read:g} s)"
    return error(f"{where}: {what or type(exc).__name__}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The clearest short text of what failed: the innermost OS error if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    text = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and not isinstance(
            current, (urllib3.exceptions.HTTPError, *_requests_errors())
        ):
            if current.strerror:
                return current.strerror
            text = text or str(current)
        inner = getattr(current, "reason", None)
        if not text and isinstance(inner, BaseException):
            text = str(inner)
        nxt = current.__cause__ or current.__context__
        if nxt is None and isinstance(inner, BaseException):
            nxt = inner
        current = nxt
    text = _POOL_PREFIX.sub("", text or str(exc) or type(exc).__name__)
    return mask_url(text)[:EXCERPT_CHARS]


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date); None if unusable.

    A date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None  # HTTP dates are GMT; a date without a zone is not one
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def status_error(where: str, response: Any, excerpt: str) -> HTTPStatusError:
    """The error for an answer (a requests response or an :class:`~.pool.Answer`) whose status
    is not counted as success; ``excerpt`` is the start of its body. Carries the seconds of
    its ``Retry-After`` header, if readable."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = f"{where}: HTTP {status} {response.reason or ''}".rstrip()
    if retry_after is not None:
        message += f" (Retry-After: {retry_after:g} s)"
    if excerpt:
        message += f": {excerpt}"
    return HTTPStatusError(message, status=status, body=excerpt, retry_after=retry_after)
