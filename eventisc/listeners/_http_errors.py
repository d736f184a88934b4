"""Translating requests' errors for the ``http`` kind, and reading failed responses."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import ssl

import requests
import urllib3

from ..errors import ConnectError, DeliveryError, DeliveryTimeout
from .base import mask_url

__all__ = ["EXCERPT_CHARS", "drain", "is_transport_error", "parse_retry_after", "translate_error"]

#: Characters of a failing response's body quoted in the error.
EXCERPT_CHARS = 200
#: Bytes kept of a body for that excerpt (a character may take up to 4).
_EXCERPT_BYTES = EXCERPT_CHARS * 4
#: Bytes of a body read at a time.
CHUNK = 8192

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
    where: str = "HTTP request",
    timeout: float | tuple[float, float] | None = None,
) -> DeliveryError:
    """The eventisc error for a requests (or urllib3/socket) error; ``where`` is "POST url".

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


def drain(response: requests.Response, limit: int) -> str:
    """Read the body, ``limit`` bytes of it at most; return its start as one line.

    A body read to its end leaves the connection reusable. A longer one is left unread:
    closing the response then drops the connection, which is cheaper than reading on (and a
    receiver cannot make eventisc read an endless body). Raises what urllib3 raises when
    reading fails.
    """
    raw = response.raw
    kept = bytearray()
    total = 0
    while total <= limit:  # one byte past the limit tells a longer body from one that fits
        chunk = raw.read(min(CHUNK, limit + 1 - total), decode_content=True)
        if not chunk:
            break
        total += len(chunk)
        if len(kept) < _EXCERPT_BYTES:
            kept += chunk[: _EXCERPT_BYTES - len(kept)]
        if raw.closed:
            break  # all of it came in (and the connection went back to the pool)
    try:
        text = kept.decode(response.encoding or "utf-8", "replace")
    except LookupError:
        text = kept.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
