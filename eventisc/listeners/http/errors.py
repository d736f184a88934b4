"""Translating the ``http`` kind's driver errors (requests, urllib3, sockets) into eventisc's,
and a failed answer (a status not counted as success) into an :class:`HTTPStatusError`.

:func:`translate_error` looks the error up in :data:`_TRANSLATIONS`, which decides, class by
class, what is transient (``ConnectError``, ``DeliveryTimeout``) and what is not.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import ssl

import requests
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
    return isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError))


#: (driver errors, eventisc error, what happened), first match wins: subclasses come first.
_TRANSLATIONS: tuple[tuple[tuple[type[BaseException], ...], type[DeliveryError], str], ...] = (
    ((requests.ConnectTimeout,), DeliveryTimeout, "timed out connecting"),
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError, yet means "refused".
    ((urllib3.exceptions.NewConnectionError,), ConnectError, "could not connect"),
    (
        (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError),
        DeliveryTimeout,
        "timed out waiting for the response",
    ),
    # Retrying does not fix a bad certificate or a TLS/plain-HTTP mismatch.
    (
        (requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError),
        DeliveryError,
        "TLS failed",
    ),
    (
        (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError),
        ConnectError,
        "the proxy failed",
    ),
    (
        (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
            ConnectionError,
        ),
        ConnectError,
        "could not connect or the connection broke",
    ),
    ((requests.TooManyRedirects,), DeliveryError, "too many redirects"),
    (
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            urllib3.exceptions.LocationValueError,
        ),
        DeliveryError,
        "the URL cannot be sent",
    ),
    ((requests.RequestException, urllib3.exceptions.HTTPError), DeliveryError, ""),
)


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
    inner = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    inner = getattr(inner, "reason", inner)  # a MaxRetryError carries the real error
    if isinstance(inner, urllib3.exceptions.ReadTimeoutError):
        matched = inner  # requests reports a timeout while reading the body as a ConnectionError
    error, what = next(
        ((err, w) for classes, err, w in _TRANSLATIONS if isinstance(matched, classes)),
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
            current, (requests.RequestException, urllib3.exceptions.HTTPError)
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


def status_error(where: str, response: requests.Response, excerpt: str) -> HTTPStatusError:
    """The error for an answer whose status is not counted as success; ``excerpt`` is the
    start of its body. Carries the seconds of its ``Retry-After`` header, if readable."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = f"{where}: HTTP {status} {response.reason or ''}".rstrip()
    if retry_after is not None:
        message += f" (Retry-After: {retry_after:g} s)"
    if excerpt:
        message += f": {excerpt}"
    return HTTPStatusError(message, status=status, body=excerpt, retry_after=retry_after)
