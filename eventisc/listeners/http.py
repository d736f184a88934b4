"""The ``http`` kind: one HTTP request per event, sent with requests.

Each listener owns one :class:`requests.Session` (keep-alive, a connection pool sized for
concurrent triggers, no cookies kept between notifications), created on first use, again after
:meth:`HttpListener.close` and in a forked child.
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import re
import threading
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

try:
    import requests
    from requests.adapters import HTTPAdapter
    from requests.structures import CaseInsensitiveDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from .base import missing_driver

    raise missing_driver("http", "requests", "http") from exc

from .. import __version__
from ..encoding import encode
from ..errors import ConfigError, HTTPStatusError, TemplateError
from ..notification import Notification
from ..template import has_fields
from ._http_errors import drain, is_transport_error, parse_retry_after, translate_error
from ._http_options import (
    PASSED,
    check_header_name,
    check_url,
    environment_settings,
    form_pairs,
    may_be_mapping,
    parse_statuses,
    parse_timeout,
    requests_options,
    set_header,
)
from .base import FilterLike, Listener, mask_url

__all__ = ["HttpListener", "form_pairs", "parse_retry_after", "translate_error"]

logger = logging.getLogger("eventisc.listeners.http")

#: Seconds to wait to connect and for each read when no ``timeout`` is configured.
DEFAULT_TIMEOUT = 10.0
#: Idle keep-alive connections kept per host; busier moments open (and close) extra ones.
POOL_MAXSIZE = 32
#: Hosts whose connection pools a listener keeps (a templated url may reach several).
POOL_HOSTS = 16

#: Origins (scheme://host:port) whose environment settings a listener keeps.
ORIGINS_KEPT = 64
_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
JSON_TYPE = "application/json; charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"

_SECONDS = {"type": "number", "exclusiveMinimum": 0}
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
                "query_kwargs; without it they are appended after `?` (or `&`).",
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
                f"(default {DEFAULT_TIMEOUT:g}).",
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
                "description": "Passed to requests: " + ", ".join(PASSED) + ", timeout. "
                "auth and cert may be YAML lists.",
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
                    "allow_redirects": {"type": "boolean", "description": "Follow redirects."},
                    "proxies": {**_MAPPING, "description": "Proxy URL per scheme."},
                    "cookies": {**_MAPPING, "description": "Cookies sent with every request."},
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
        self._url, self._url_has_query = self._compile_url(url)
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
        if "timeout" in options:
            if timeout is not None:
                raise ConfigError(
                    "give the timeout once: either `timeout` or `requests_kwargs.timeout`",
                    "requests_kwargs.timeout",
                )
            timeout = options.pop("timeout")
            self.timeout = parse_timeout(timeout, "requests_kwargs.timeout")
        else:
            self.timeout = parse_timeout(DEFAULT_TIMEOUT if timeout is None else timeout, "timeout")
        self._static_headers, self._send_kwargs = requests_options(options)
        self.success_status: frozenset[int] = parse_statuses(success_status)
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._origins: dict[str, dict[str, Any]] = {}
        self._pid = os.getpid()
        _LISTENERS.add(self)

    def _compile_url(self, url: Any) -> tuple[Any, bool]:
        if not isinstance(url, str) or not url:
            raise ConfigError("an http listener needs a `url` (a string)", "url")
        if not has_fields(url):
            check_url(url, ConfigError, "url")
        elif "://" in url.split("{", 1)[0]:
            check_url(url.split("{", 1)[0], ConfigError, "url", scheme_only=True)
        try:
            return self.template(url, "url"), False
        except ConfigError:
            # Only a url that uses `query_string` compiles with it: then it places the query.
            return self.template(url, "url", names=("query_string",)), True

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
        query = ""
        if self._query is not None:
            query = urlencode(form_pairs(self._query.render(ctx), "query_kwargs"))
        if self._url_has_query:
            url = self._url.render({**ctx, "query_string": query})
        else:
            url = self._url.render(ctx)
            if query and isinstance(url, str):
                url, hash_, fragment = url.partition("#")
                url = f"{url}{'&' if '?' in url else '?'}{query}{hash_}{fragment}"
        if not isinstance(url, str):
            raise TemplateError(f"url renders to a {type(url).__name__}, not a string")
        check_url(url, TemplateError, "url")
        headers: dict[str, str] = {}
        body = None
        if self._data is not None:
            value = self._data.render(ctx)
            if self.request_format == "json":
                body = encode(value, "the body (data)")
                headers["Content-Type"] = JSON_TYPE
            else:
                body = urlencode(form_pairs(value, "data"))
                headers["Content-Type"] = FORM_TYPE
        if self._headers is not None:
            for name, value in self._headers.render(ctx).items():
                set_header(headers, name, value)
        payload = {"method": self.method, "url": url, "headers": headers, "body": body}
        return Notification(self.name, self.kind, event_name, payload)

    # -- deliver (the only I/O) -----------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        """Send the request; return ``"HTTP <status>"`` when the status counts as success.

        Raises :class:`HTTPStatusError` for any other status, :class:`DeliveryTimeout`,
        :class:`ConnectError` or :class:`DeliveryError` (see :func:`translate_error`).
        """
        payload = notification.payload
        method, url = payload["method"], payload["url"]
        where = f"{method} {mask_url(url)}"
        headers = CaseInsensitiveDict(self._static_headers)
        headers.update(payload.get("headers") or {})
        body = payload.get("body")
        session = self._get_session()
        try:
            response = session.request(
                method,
                url,
                data=body.encode("utf-8") if body is not None else None,
                headers=headers,
                timeout=self.timeout,
                stream=True,  # read the body ourselves, bounded, after checking the status
                **self._settings(url),
            )
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            raise translate_error(exc, where, self.timeout) from exc
        with response:
            status = response.status_code
            ok = status in self.success_status
            try:
                excerpt = drain(response)
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                # The status is what the receiver decided; a broken body does not change it.
                logger.warning("%s: HTTP %s, then reading the body failed: %s", where, status, exc)
                excerpt = ""
        if ok:
            logger.debug("%s: HTTP %s", where, status)
            return f"HTTP {status}"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        message = f"{where}: HTTP {status} {response.reason or ''}".rstrip()
        if retry_after is not None:
            message += f" (Retry-After: {retry_after:g} s)"
        if excerpt:
            message += f": {excerpt}"
        raise HTTPStatusError(message, status=status, body=excerpt, retry_after=retry_after)

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

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is not None and self._pid == os.getpid():
            return session
        with self._lock:
            if self._session is None or self._pid != os.getpid():
                self._session = _new_session()
                self._pid = os.getpid()
            return self._session

    def _after_fork(self) -> None:
        # The parent's sockets (and a lock another thread may have held) are not ours to use.
        self._lock = threading.Lock()
        self._session = None
        self._pid = os.getpid()

    # -- lifecycle ------------------------------------------------------------------------------

    def describe(self) -> str:
        """``POST http://host/path`` with any password in the url masked."""
        return f"{self.method} {mask_url(str(self._url.source))}"

    def close(self) -> None:
        """Close the session's connections; the next delivery opens a new session."""
        with self._lock:
            session, self._session = self._session, None
            self._origins = {}
        if session is not None and self._pid == os.getpid():
            session.close()


#: Live listeners, to drop their sessions in a forked child.
_LISTENERS: weakref.WeakSet[HttpListener] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for listener in list(_LISTENERS):
        listener._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


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


def _new_session() -> requests.Session:
    session = requests.Session()
    # No retries: a POST may have reached the receiver; retrying is the caller's decision.
    adapter = HTTPAdapter(pool_connections=POOL_HOSTS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.cookies.set_policy(_NoCookies())
    # The listener reads the environment's settings once per origin (see _settings).
    session.trust_env = False
    session.headers["User-Agent"] = f"eventisc/{__version__} {requests.utils.default_user_agent()}"
    return session
