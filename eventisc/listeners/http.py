"""The ``http`` kind: one HTTP request per event, sent with requests.

Each listener owns one :class:`requests.Session` (keep-alive, a connection pool sized for
concurrent triggers, no cookies kept between notifications), created on first use, again after
:meth:`HttpListener.close` and in a forked child.

Below requests, the session's connections (:class:`_Connection`) bound every step of an attempt
(connecting, sending, each read of the answer) by the attempt's deadline, and their responses
(:class:`_Response`) skip informational (1xx) answers. The listener follows redirects itself
(:meth:`HttpListener._redirect`): requests would turn a POST into a body-less GET.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

try:
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter
    from requests.structures import CaseInsensitiveDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from .base import missing_driver

    raise missing_driver("http", "requests", "http") from exc

from .._fork import register
from .._version import __version__
from ..encoding import encode
from ..errors import ConfigError, DeliveryError, DeliveryTimeout, HTTPStatusError, TemplateError
from ..notification import Notification
from ..template import has_fields
from ._http_errors import drain, parse_retry_after, translate_error
from ._http_options import (
    ALIASES,
    MAX_SECONDS,
    PASSED,
    check_header_name,
    check_url,
    check_url_start,
    environment_settings,
    form_encode,
    form_pairs,
    may_be_mapping,
    parse_byte_count,
    parse_seconds,
    parse_statuses,
    parse_timeout,
    requests_options,
    set_header,
    url_problem,
)
from .base import FilterLike, Listener, mask_url

__all__ = ["HttpListener", "form_pairs", "parse_retry_after", "translate_error"]

logger = logging.getLogger("eventisc.listeners.http")

#: Seconds to wait to connect and for each read when no ``timeout`` is configured.
DEFAULT_TIMEOUT = 10.0
#: Without a ``deadline``, an attempt may take this many read timeouts (and at least the
#: connect timeout plus one read timeout).
DEADLINE_READS = 3
#: Bytes of a response body read at most when no ``max_response_bytes`` is configured.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
#: Redirects one attempt follows at most (requests' 30 lets a loop hold a worker for long).
MAX_REDIRECTS = 5
#: Statuses that point elsewhere with a ``Location`` header.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Methods that follow redirects unless ``follow_redirects`` says otherwise: no body to lose.
SAFE_METHODS = ("GET", "HEAD")
#: Idle keep-alive connections kept per host; busier moments open (and close) extra ones.
POOL_MAXSIZE = 32
#: Hosts whose connection pools a listener keeps (a templated url may reach several).
POOL_HOSTS = 16

#: Origins (scheme://host:port) whose environment settings a listener keeps.
ORIGINS_KEPT = 64
_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Headers that carry credentials: not sent on to another origin after a redirect.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie")
#: requests keywords that carry credentials (the same).
_CREDENTIAL_OPTIONS = ("auth", "cookies")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
JSON_TYPE = "application/json; charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"

_SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}
_MAPPING = {"type": "object"}


class HttpListener(Listener):
    """Sends each event as an HTTP request (JSON or form body) and checks the status."""

    kind = "http"
    schema = {
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "description": "Templated http(s) URL. `{query_string}` inserts the encoded "
                "query_kwargs; without it they are appended after `?` (or `&`). Checked at load "
                "as far as it is constant (host, port 1-65535, IPv6 in brackets, no control "
                "characters), after rendering otherwise.",
            },
            "method": {
                "type": "string",
                "description": "HTTP method, any case: " + ", ".join(METHODS) + " (default POST).",
            },
            "query_kwargs": {
                **_MAPPING,
                "description": "Templated query parameters (lists repeat the key; null omits it).",
            },
            "data": {
                "description": "Templated body, encoded as `request_format`; absent or null sends "
                "no body.",
            },
            "request_format": {
                "enum": ["json", "form"],
                "description": "json (default): data as JSON; form: data (a mapping of text, "
                "numbers, booleans or lists of them) as application/x-www-form-urlencoded.",
            },
            "headers": {
                **_MAPPING,
                "description": "Templated headers, merged over requests_kwargs.headers; a value "
                "rendering to null omits the header.",
            },
            "timeout": {
                "oneOf": [
                    _SECONDS,
                    {"type": "array", "items": _SECONDS, "minItems": 2, "maxItems": 2},
                ],
                "description": "Seconds to connect and to wait for each read, or [connect, read] "
                f"(default {DEFAULT_TIMEOUT:g}; at most {MAX_SECONDS:g}). A receiver that keeps "
                "sending slowly is stopped by `deadline`.",
            },
            "deadline": {
                **_SECONDS,
                "description": "Seconds one attempt may take in all: connecting, sending, the "
                "status, headers and body of the answer, and any redirects. Exceeding it is a "
                f"DeliveryTimeout (transient). Default: {DEADLINE_READS} times the read timeout, "
                f"and at least connect + read timeout ({DEADLINE_READS * DEFAULT_TIMEOUT:g} s with "
                "the default timeout). DNS lookups count but cannot be cut short.",
            },
            "max_response_bytes": {
                "type": "integer",
                "minimum": 0,
                "description": "Bytes of a response body read at most (default "
                f"{DEFAULT_MAX_RESPONSE_BYTES} = 1 MiB). A longer body is not read: the "
                "connection is dropped and the status still decides.",
            },
            "follow_redirects": {
                "type": "boolean",
                "description": "Follow redirects (301, 302, 307, 308; 303 only for GET and HEAD), "
                f"at most {MAX_REDIRECTS}, keeping the method and body, and sending credentials "
                "(Authorization, Cookie, auth, cookies) only to the url's own origin. Default: "
                "true for GET and HEAD, false for other methods. A redirect not followed is an "
                "HTTPStatusError naming its Location, not retried.",
            },
            "success_status": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "oneOf": [
                        {"type": "integer", "minimum": 100, "maximum": 599},
                        {"type": "string", "pattern": "^[1-5][xX][xX]$"},
                    ]
                },
                "description": 'Statuses counted as delivered: codes and classes like "2xx" '
                '(default ["2xx"]).',
            },
            "requests_kwargs": {
                **_MAPPING,
                "description": "Passed to requests: " + ", ".join(PASSED) + "; and timeout, "
                "allow_redirects (other names for the listener's options). auth and cert may be "
                "YAML lists. Checked at load.",
                "properties": {
                    "headers": {**_MAPPING, "description": "Constant headers of every request."},
                    "auth": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "description": "[user, password] for HTTP Basic auth.",
                    },
                    "verify": {
                        "type": ["boolean", "string"],
                        "description": "Check TLS certificates (default true) or a CA bundle path.",
                    },
                    "cert": {
                        "type": ["string", "array"],
                        "description": "Client certificate file, or [cert, key] files.",
                    },
                    "allow_redirects": {
                        "type": "boolean",
                        "description": "Same as the listener's `follow_redirects` (give only one "
                        "of them).",
                    },
                    "proxies": {
                        **_MAPPING,
                        "description": "Proxy URL per scheme (http, https; socks5:// needs "
                        "requests[socks]), and no_proxy.",
                    },
                    "cookies": {
                        **_MAPPING,
                        "description": "Cookies (name: text) sent with every request to the "
                        "url's origin.",
                    },
                    "timeout": {
                        "description": "Same as the listener's `timeout` (give only one of them)."
                    },
                },
            },
        },
        "required": ["url"],
    }

    def __init__(
        self,
        event_name: Any = None,
        url: str | None = None,
        method: str = "post",
        query_kwargs: Mapping[str, Any] | None = None,
        data: Any = None,
        requests_kwargs: Mapping[str, Any] | None = None,
        request_format: str = "json",
        filter: FilterLike = None,
        *,
        headers: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] | list[float] | None = None,
        success_status: list[int | str] | None = None,
        follow_redirects: bool | None = None,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
        **common: Any,
    ):
        super().__init__(event_name, filter, **common)
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise ConfigError(
                f"unknown method {method!r}; use one of {', '.join(METHODS)}", "method"
            )
        self.method: str = method.upper()
        if request_format not in ("json", "form"):
            raise ConfigError(
                f"request_format is {request_format!r}; use `json` or `form`", "request_format"
            )
        self.request_format: str = request_format
        self._url, self._url_has_query, self._url_is_constant = self._compile_url(url)
        self._query = self._compile_mapping(query_kwargs, "query_kwargs")
        self._headers = self._compile_mapping(headers, "headers")
        for name in headers or ():
            check_header_name(name, "headers")
        if request_format == "form" and data is not None and not may_be_mapping(data):
            raise ConfigError(
                "with `request_format: form`, data must be a mapping (or one template field "
                f"rendering to a mapping), not {data!r}",
                "data",
            )
        self._data = self.template(data, "data") if data is not None else None
        options = dict(requests_kwargs or {})
        self._set_sending_options(options, timeout, follow_redirects, deadline, max_response_bytes)
        self._static_headers, self._send_kwargs = requests_options(options)
        #: What requests is given for a redirect to another origin: no credentials.
        self._anonymous_kwargs = {
            k: v for k, v in self._send_kwargs.items() if k not in _CREDENTIAL_OPTIONS
        }
        self.success_status: frozenset[int] = parse_statuses(success_status)
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._origins: dict[str, dict[str, Any]] = {}
        register(self)

    def _set_sending_options(
        self,
        options: dict[str, Any],
        timeout: Any,
        follow_redirects: Any,
        deadline: Any,
        max_response_bytes: Any,
    ) -> None:
        """Set timeout, deadline, max_response_bytes and follow_redirects; take their aliases
        (``requests_kwargs.timeout``, ``.allow_redirects``) out of ``options``."""
        timeout, path = _take_alias(options, "timeout", timeout)
        #: Seconds to connect, and to wait for each read: one number or (connect, read).
        self.timeout = parse_timeout(timeout, path) if path else DEFAULT_TIMEOUT
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout,) * 2
        #: Seconds one attempt may take in all (connect, send, answer, redirects).
        self.deadline: float = (
            parse_seconds(deadline, "deadline")
            if deadline is not None
            else max(DEADLINE_READS * read, connect + read)
        )
        #: Bytes of a response body read at most.
        self.max_response_bytes: int = (
            parse_byte_count(max_response_bytes, "max_response_bytes")
            if max_response_bytes is not None
            else DEFAULT_MAX_RESPONSE_BYTES
        )
        follow, path = _take_alias(options, "allow_redirects", follow_redirects)
        if path and not isinstance(follow, bool):
            raise ConfigError(f"must be true or false, not {follow!r}", path)
        #: Whether redirects are followed (by default only for GET and HEAD).
        self.follow_redirects: bool = follow if path else self.method in SAFE_METHODS
        self._follow: frozenset[int] = frozenset()
        if self.follow_redirects:
            # 303 See Other points at a result to fetch, not at a place to send a body again.
            self._follow = REDIRECTS if self.method in SAFE_METHODS else REDIRECTS - {303}

    def _compile_url(self, url: Any) -> tuple[Any, bool, bool]:
        """The url's template, whether it places the query itself, whether it is constant.

        A constant url is checked here as requests will send it; a templated one as far as
        its constant start goes (scheme, and host and port when no field is in them).
        """
        if not isinstance(url, str) or not url:
            raise ConfigError("an http listener needs a `url` (a string)", "url")
        constant = not has_fields(url)
        if constant:
            check_url(url, ConfigError, "url", full=True)
        else:
            check_url_start(url)
        try:
            return self.template(url, "url"), False, constant
        except ConfigError:
            # Only a url that uses `query_string` compiles with it: then it places the query.
            return self.template(url, "url", names=("query_string",)), True, constant

    def _compile_mapping(self, value: Any, path: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a mapping, not {type(value).__name__}", path)
        return self.template(dict(value), path)

    # -- render (pure) ------------------------------------------------------------------------

    def render(self, event_name: str, event_data: Any) -> Notification:
        """Render the request: method, url (query included), headers and the encoded body.

        Raises :class:`TemplateError` when a template fails or a value cannot be encoded.
        """
        ctx: dict[str, Any] = {"event_name": event_name, "event_data": event_data}
        url = self._render_url(ctx)
        headers: dict[str, str] = {}
        body = None
        if self._data is not None:
            value = self._data.render(ctx)
            if self.request_format == "json":
                body = encode(value, "the body (data)")
                headers["Content-Type"] = JSON_TYPE
            else:
                body = form_encode(value, "data")
                headers["Content-Type"] = FORM_TYPE
        if self._headers is not None:
            for name, value in self._headers.render(ctx).items():
                set_header(headers, name, value)
        payload = {"method": self.method, "url": url, "headers": headers, "body": body}
        return Notification(self.name, self.kind, event_name, payload)

    def _render_url(self, ctx: dict[str, Any]) -> str:
        query = ""
        if self._query is not None:
            query = form_encode(self._query.render(ctx), "query_kwargs")
        if self._url_has_query:
            url = self._url.render({**ctx, "query_string": query})
        else:
            url = self._url.render(ctx)
            if query and isinstance(url, str):
                url, hash_, fragment = url.partition("#")
                url = f"{url}{'&' if '?' in url else '?'}{query}{hash_}{fragment}"
        if not isinstance(url, str):
            raise TemplateError(f"url renders to a {type(url).__name__}, not a string")
        if not self._url_is_constant:  # a constant one was checked at load (and a query is safe)
            check_url(url, TemplateError, "url")
        return url

    # -- deliver (the only I/O) -----------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        """Send the request; return ``"HTTP <status>"`` when the status counts as success.

        The whole attempt, redirects included, ends by the listener's ``deadline``. Raises
        :class:`HTTPStatusError` for any other status (a redirect not followed included),
        :class:`DeliveryTimeout`, :class:`ConnectError` or :class:`DeliveryError` (see
        :func:`translate_error`): whatever fails inside requests comes out as one of these.
        """
        payload = notification.payload
        method, url = payload["method"], payload["url"]
        where = f"{method} {mask_url(url)}"
        headers = CaseInsensitiveDict(self._static_headers)
        headers.update(payload.get("headers") or {})
        body = payload.get("body")
        data = body.encode("utf-8") if body is not None else None
        session = self._get_session()
        # Read by this thread's connections (see _Connection) for every step until the answer.
        _attempt.deadline = time.monotonic() + self.deadline
        response, excerpt = self._exchange(session, (method, url, data, headers), where)
        status = response.status_code
        if status in self.success_status:
            logger.debug("%s: HTTP %s", where, status)
            return f"HTTP {status}"
        if status in REDIRECTS and response.headers.get("Location"):
            return self._redirect(session, (method, url, data, headers), response, excerpt, where)
        raise _status_error(where, response, excerpt)

    def _exchange(
        self,
        session: requests.Session,
        request: _Request,
        where: str,
        *,
        foreign: bool = False,
    ) -> tuple[requests.Response, str]:
        """Send ``request``; return the response (closed) and the start of its body, read
        within ``max_response_bytes``. Raises the eventisc error when no answer came.

        ``foreign``: the url is on another origin than the listener's request was for (a
        redirect): the configured credentials are left out.
        """
        method, url, data, headers = request
        try:
            settings = self._foreign_settings(url) if foreign else self._settings(url)
            response = session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                stream=True,  # read the body ourselves, bounded, after checking the status
                **settings,
            )
        except Exception as exc:
            raise self._failure(exc, where) from exc
        with response:
            try:
                excerpt = drain(response, self.max_response_bytes)
            except Exception as exc:
                # The status is what the receiver decided; a slow or broken body does not
                # change it (a 2xx sent again would be a duplicate).
                logger.warning(
                    "%s, while reading the body of an HTTP %s answer (the status stands)",
                    self._failure(exc, where),
                    response.status_code,
                )
                excerpt = ""
        return response, excerpt

    def _failure(self, exc: Exception, where: str) -> DeliveryError:
        # Every wait of an attempt ends by its deadline: a failure at or past the deadline is
        # the deadline's doing, whichever exception the driver wrapped it in.
        if time.monotonic() >= _attempt.deadline:
            return DeliveryTimeout(
                f"{where}: did not finish within {self.deadline:g} s (the listener's `deadline` "
                "for connecting, sending and reading the answer)"
            )
        return translate_error(exc, where, self.timeout)

    def _redirect(
        self,
        session: requests.Session,
        request: _Request,
        response: requests.Response,
        excerpt: str,
        where: str,
    ) -> str:
        """Follow the redirects that ``response`` (the answer to ``request``) starts, as far
        as ``follow_redirects`` allows and :data:`MAX_REDIRECTS` at most.

        Method and body are kept; credentials go only to the request's own origin.
        """
        method, url, data, headers = request
        origin = _origin(url)
        here, status = where, response.status_code
        for _ in range(MAX_REDIRECTS):
            if response.status_code not in self._follow:
                raise self._not_followed(here, (method, url), response, excerpt)
            url = _redirect_target(url, response, here)
            here = f"{where} (redirected to {mask_url(url)})"
            foreign = _origin(url) != origin
            hop_headers = _without_credentials(headers) if foreign else headers
            response, excerpt = self._exchange(
                session, (method, url, data, hop_headers), here, foreign=foreign
            )
            status = response.status_code
            if status in self.success_status:
                logger.debug("%s: HTTP %s", here, status)
                return f"HTTP {status}"
            if status not in REDIRECTS or not response.headers.get("Location"):
                raise _status_error(here, response, excerpt)
        raise DeliveryError(
            f"{where}: more than {MAX_REDIRECTS} redirects; the last, HTTP {status}, points to "
            f"{mask_url(_location(response))!r}"
        )

    def _not_followed(
        self, where: str, request: tuple[str, str], response: requests.Response, excerpt: str
    ) -> HTTPStatusError:
        method, url = request
        status = response.status_code
        if status == 303 and self.follow_redirects:
            advice = (
                f"that points at a result to fetch, not at a place to send the {method} again; "
                "if the receiver answers 303 once it has handled the request, add 303 to "
                "success_status"
            )
        else:
            advice = (
                "redirects are not followed: set `follow_redirects: true` to follow them (the "
                "method and body are kept), or point `url` at the new location"
            )
        target = urljoin(url, _location(response))
        message = (
            f"{where}: HTTP {status} {response.reason or ''}".rstrip()
            + f", redirecting to {mask_url(target)!r}; {advice}"
        )
        return HTTPStatusError(message, status=status, body=excerpt)

    def _settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for ``url``: the options with the environment's settings for
        its origin, read on the first request there (the session does not read them)."""
        match = _ORIGIN.match(url)
        origin = match.group() if match is not None else url
        settings = self._origins.get(origin)
        if settings is None:
            settings = environment_settings(origin, self._send_kwargs)
            if len(self._origins) < ORIGINS_KEPT:
                self._origins[origin] = settings
        return settings

    def _foreign_settings(self, url: str) -> dict[str, Any]:
        """The requests keywords for a redirect to another origin than the url's: without the
        configured credentials (its own from ``~/.netrc`` apply). Not kept: redirects are rare."""
        match = _ORIGIN.match(url)
        return environment_settings(match.group() if match else url, self._anonymous_kwargs)

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                self._session = _new_session()
            return self._session

    def _after_fork(self) -> None:
        # The parent's sockets (and a lock another thread may have held) are not ours to use.
        self._lock = threading.Lock()
        self._session = None

    # -- lifecycle ------------------------------------------------------------------------------

    def describe(self) -> str:
        """``POST http://host/path`` with any password in the url masked."""
        return f"{self.method} {mask_url(str(self._url.source))}"

    def close(self) -> None:
        """Close the session's connections; the next delivery opens a new session."""
        with self._lock:
            session, self._session = self._session, None
            self._origins = {}
        if session is not None:
            session.close()


#: What one hop of an attempt sends: method, url, body, headers.
_Request = tuple[str, str, "bytes | None", "CaseInsensitiveDict[str]"]


def _take_alias(options: dict[str, Any], key: str, value: Any) -> tuple[Any, str]:
    """The listener option that ``requests_kwargs[key]`` is another name for: ``value``, or
    the requests option (taken out of ``options``); with the config path it came from, ""
    when neither was given. Giving both is a :class:`ConfigError`."""
    name = ALIASES[key]
    if key not in options:
        return value, name if value is not None else ""
    if value is not None:
        raise ConfigError(
            f"give the {name} once: either `{name}` or `requests_kwargs.{key}`",
            f"requests_kwargs.{key}",
        )
    return options.pop(key), f"requests_kwargs.{key}"


def _status_error(where: str, response: requests.Response, excerpt: str) -> HTTPStatusError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = f"{where}: HTTP {status} {response.reason or ''}".rstrip()
    if retry_after is not None:
        message += f" (Retry-After: {retry_after:g} s)"
    if excerpt:
        message += f": {excerpt}"
    return HTTPStatusError(message, status=status, body=excerpt, retry_after=retry_after)


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port): where credentials may go."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return url, "", 0  # matches no other url: credentials stay behind


def _location(response: requests.Response) -> str:
    location = response.headers.get("Location") or ""
    try:
        # http.client reads headers as latin-1; a non-ASCII Location is far more often UTF-8.
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location


def _redirect_target(url: str, response: requests.Response, where: str) -> str:
    """The url ``response`` redirects to; :class:`DeliveryError` if it is no http(s) URL."""
    location = _location(response)
    target = urljoin(url, location)
    problem = url_problem(target)
    if problem is not None:
        raise DeliveryError(
            f"{where}: HTTP {response.status_code} redirects to {mask_url(location)!r}, which "
            f"{problem}"
        )
    return target


def _without_credentials(headers: CaseInsensitiveDict[str]) -> CaseInsensitiveDict[str]:
    kept = headers.copy()
    for name in _CREDENTIAL_HEADERS:
        kept.pop(name, None)
    return kept


class _NoCookies(http.cookiejar.CookiePolicy):
    """Keeps the session's cookie jar empty: each notification stands on its own."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = False

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


# -- the session and its connections ------------------------------------------------------------

#: The attempt this thread is sending: ``deadline``, a time.monotonic() value, set by
#: HttpListener.deliver before it sends. Connections find it here because requests and urllib3
#: pass only a timeout down to them.
_attempt = threading.local()


class _DeadlinePassed(TimeoutError):
    """The attempt's deadline passed before the next step could start."""


def _time_left(timeout: float | None) -> float | None:
    """``timeout``, shortened to what is left of this thread's attempt.

    Raises :class:`_DeadlinePassed` (a TimeoutError, which urllib3 handles as one) when nothing
    is left.
    """
    deadline = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed("the deadline of the attempt has passed")
    return left if timeout is None or left < timeout else timeout


class _DeadlineReader(io.RawIOBase):
    """The socket as http.client reads a response from it, each read waiting no longer than
    the attempt's deadline allows (the socket's timeout bounds one read, not their sum)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        # A SocketIO, as http.client's own: it keeps the socket open while the response reads.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._timeout = sock.gettimeout()  # the read timeout urllib3 has just set

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if self._timeout is None or left < self._timeout:
            if left <= 0:
                raise _DeadlinePassed("the deadline of the attempt has passed")
            self._sock.settimeout(left)
            self._timeout = left
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client's response takes of a socket: ``makefile``, here bound by a deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _Response(http.client.HTTPResponse):
    """http.client's response, read within the attempt's deadline, skipping informational
    answers: http.client skips ``100 Continue`` only, and would take a ``103 Early Hints`` for
    the final status (urllib3 and requests take what http.client gives)."""

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ):
        deadline = getattr(_attempt, "deadline", None)
        # A TLS-in-TLS tunnel (HTTPS proxy) is no socket: it reads with its timeout only.
        if deadline is not None and isinstance(sock, socket.socket):
            sock = _DeadlineSocket(sock, deadline)
        super().__init__(sock, debuglevel, method, url)

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        # 101 Switching Protocols is final (eventisc never asks for it); http.client's begin()
        # skips 100 itself.
        while 100 < status < 200 and status != 101:
            http.client.parse_headers(self.fp)  # the informational answer's headers: dropped
            version, status, reason = super()._read_status()  # type: ignore[misc]
        return version, status, reason


class _Connection(urllib3.connection.HTTPConnection):
    """urllib3's connection, bounding connecting and sending by the attempt's deadline too."""

    response_class = _Response

    def _new_conn(self) -> socket.socket:
        self.timeout = _time_left(self.timeout)
        sock = super()._new_conn()
        try:
            # A TLS handshake may follow: Python bounds it, as a whole, by the socket's timeout.
            sock.settimeout(_time_left(self.timeout))
        except _DeadlinePassed:
            sock.close()
            raise
        return sock

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()  # as http.client would, so that sending gets only what is left
        if self.sock is not None:
            # sendall() takes the socket's timeout for all it sends.
            self.sock.settimeout(_time_left(self.timeout))
        super().send(data)


class _HTTPSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter, with pools of :class:`_Connection` (direct or through an HTTP(S)
    proxy; a SOCKS proxy keeps its own connections, bounded by the timeout only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


class _Session(requests.Session):
    """requests' session, leaving redirects to the listener (:meth:`HttpListener._redirect`):
    requests would turn a POST into a body-less GET, send credentials on to another scheme or
    port, and read every redirect's body to its end."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def _new_session() -> requests.Session:
    session = _Session()
    # No retries: a POST may have reached the receiver; retrying is the caller's decision.
    adapter = _Adapter(pool_connections=POOL_HOSTS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.cookies.set_policy(_NoCookies())
    # The listener reads the environment's settings once per origin (see _settings).
    session.trust_env = False
    session.headers["User-Agent"] = f"eventisc/{__version__} {requests.utils.default_user_agent()}"
    return session
