"""The ``http`` kind's options: their JSON Schema (:data:`HTTP_SCHEMA`), the checks run on them
at load, and the encoding of their rendered values (url, query, form body, headers) per event."""

from __future__ import annotations

import datetime
import decimal
import importlib.util
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from ...cloudevents import CLOUDEVENTS_PROPERTIES
from ...errors import ConfigError, TemplateError
from ...settings import count_option, seconds_option
from ...template import has_fields, split_fields
from ..base import mask_url

__all__ = [
    "ALIASES",
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_OPTIONS",
    "DEADLINE_READS",
    "DEFAULT_IDEMPOTENCY_HEADER",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "HTTP_SCHEMA",
    "MAX_REDIRECTS",
    "MAX_SECONDS",
    "METHODS",
    "PASSED",
    "REQUESTS_ONLY",
    "check_header_name",
    "check_url",
    "check_url_start",
    "environment_settings",
    "form_encode",
    "form_pairs",
    "may_be_mapping",
    "needs_requests",
    "parse_byte_count",
    "parse_idempotency_header",
    "parse_seconds",
    "parse_statuses",
    "parse_timeout",
    "requests_options",
    "set_header",
    "take_alias",
    "url_problem",
]

#: Seconds to wait to connect and for each read when no ``timeout`` is configured.
DEFAULT_TIMEOUT = 10.0
#: Without a ``deadline``, an attempt may take this many read timeouts (and at least the
#: connect timeout plus one read timeout).
DEADLINE_READS = 3
#: Bytes of a response body read at most when no ``max_response_bytes`` is configured.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
#: The header that carries the notification id when no ``idempotency_header`` is configured.
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Headers requests or the listener write themselves: never the idempotency header.
_FRAMING_HEADERS = ("content-type", "content-length", "transfer-encoding", "host")
#: Redirects one attempt follows at most (requests' 30 lets a loop hold a worker for long).
MAX_REDIRECTS = 5
#: The methods a listener may send.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

#: requests_kwargs the listener controls itself, with what to write instead.
_CONTROLLED = {
    "method": "use the `method` option",
    "url": "use the `url` option",
    "params": "use `query_kwargs`",
    "data": "use the `data` option (and `request_format`)",
    "json": "use the `data` option with `request_format: json`",
    "files": "the listener sends a JSON or form body",
    "stream": "the listener reads every response itself",
}
#: requests_kwargs passed on to the client (urllib3, or requests for what only it honours).
PASSED = ("headers", "auth", "verify", "cert", "proxies", "cookies", "hooks", "adapters")
#: requests_kwargs only requests can honour: a listener given one sends through requests.
REQUESTS_ONLY = ("cookies", "hooks", "adapters")
#: requests_kwargs that are another name for a listener option (the listener reads them).
ALIASES = {"timeout": "timeout", "allow_redirects": "follow_redirects"}
#: Headers that carry credentials: not sent on to another origin after a redirect.
CREDENTIAL_HEADERS = ("Authorization", "Cookie")
#: requests_kwargs that carry credentials (the same).
CREDENTIAL_OPTIONS = ("auth", "cookies")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Never valid in a URL. urllib.parse drops tabs and line breaks without a word and requests
#: percent-encodes the rest: a value holding one is an error to report, not to repair.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: An IPv6 address (perhaps with a port) written without the brackets a URL needs.
_BARE_IPV6 = re.compile(r"[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
#: The scheme and authority at the start of a url (up to the path, query or a template field).
_AUTHORITY = re.compile(r"[^:/?#{]*://[^/?#{]*")
#: What a header value cannot hold: it would end the header (or the C string) early.
_BREAK = re.compile(r"[\r\n\x00]")
#: The longest duration accepted, a day: a longer one is a mistake (milliseconds?), and a far
#: longer one overflows the socket layer (an OverflowError on every event).
MAX_SECONDS = 86400.0

_SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}
_MAPPING = {"type": "object"}

#: JSON Schema of the http kind's own options.
HTTP_SCHEMA: dict[str, Any] = {
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "Templated http:// or https:// URL. `{query_string}` inserts the "
            "encoded `query_kwargs`; without it they are appended after `?` (or `&`). Checked "
            "when the config is loaded as far as it is constant (a host, a port from 1 to "
            "65535, an IPv6 host in brackets, no spaces or control characters, what urllib3 "
            "would refuse), and after rendering otherwise. A password in it is shown as `***`.",
        },
        "method": {
            "type": "string",
            "default": "POST",
            "description": "The HTTP method, any case: " + ", ".join(METHODS) + ".",
        },
        "query_kwargs": {
            **_MAPPING,
            "description": "Templated query parameters; a list repeats the key, `null` leaves "
            "it out.",
        },
        "data": {
            "description": "The templated body, encoded as `request_format` says. Absent or "
            "`null` sends no body; anything else (`{}` included) is encoded.",
        },
        "request_format": {
            "enum": ["json", "form"],
            "default": "json",
            "description": "`json`: `data` as strict JSON (`Content-Type: application/json; "
            "charset=utf-8`; datetimes as ISO 8601, Decimal and UUID as strings; NaN and "
            "Infinity refused). `form`: `data` as `application/x-www-form-urlencoded`; it must "
            "be a mapping (or one field rendering to one) of text, numbers, booleans "
            "(`True`/`False`, as requests writes them), dates, or lists of these (the key is "
            "repeated); `null` values are left out; a nested mapping is an error.",
        },
        "headers": {
            **_MAPPING,
            "description": "Templated headers, merged over `requests_kwargs.headers` (names "
            "are case-insensitive); may replace `Content-Type`; a value rendering to `null` "
            "leaves the header out.",
        },
        "idempotency_header": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": DEFAULT_IDEMPOTENCY_HEADER,
            "description": "The header that carries the notification's id (32 hex digits), the "
            "same on every attempt, retry and spool replay of one notification, for the "
            "receiver to deduplicate with. A header of this name in `headers` or "
            "`requests_kwargs.headers` (any case) is sent instead. `null` sends none, as "
            "event-isc did.",
        },
        "signing": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secret": {
                    "type": "string",
                    "description": "`whsec_<base64 key>` (HMAC-SHA256, `v1`), or "
                    "`whsk_<base64 seed>` (ed25519, `v1a`: `pip install 'eventisc[ed25519]'`).",
                },
                "secrets": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string"},
                    "description": "Several secrets (`whsec_` or `whsk_`), while one replaces "
                    "another.",
                },
            },
            "description": "Sign every request as Standard Webhooks does: `{secret: whsec_...}` "
            "or `{secrets: [whsec_..., ...]}` (one signature per secret, for rotations). Each "
            "attempt carries `webhook-id` (the notification's id), `webhook-timestamp` and "
            "`webhook-signature` (`v1,` HMAC-SHA256, or `v1a,` ed25519, of the body as sent). "
            "Secrets are checked when the config is loaded and never shown. See "
            "[Signed webhooks](webhooks.md).",
        },
        "timeout": {
            "oneOf": [
                _SECONDS,
                {"type": "array", "items": _SECONDS, "minItems": 2, "maxItems": 2},
            ],
            "default": DEFAULT_TIMEOUT,
            "description": "Seconds to connect, and to wait for each read of the answer; or "
            f"`[connect, read]`. A finite number above 0, at most {MAX_SECONDS:g} (a day): "
            'there is no "no timeout". One read is bounded, not the whole answer: a '
            "receiver that keeps sending slowly is stopped by `deadline`.",
        },
        "deadline": {
            **_SECONDS,
            "description": "Seconds one attempt may take in all: connecting (TCP and TLS), "
            "sending, the status line, headers and body of the answer, and the redirects it "
            "follows. Enforced on the connection itself, so a receiver that trickles its answer "
            "a byte at a time is cut off. Exceeding it is a `DeliveryTimeout` (transient). A "
            f"finite number above 0, at most {MAX_SECONDS:g}. Default: {DEADLINE_READS} × the "
            f"read timeout, and at least connect + read timeout "
            f"({DEADLINE_READS * DEFAULT_TIMEOUT:g} s with the default `timeout`).",
        },
        "max_response_bytes": {
            "type": "integer",
            "minimum": 0,
            "default": DEFAULT_MAX_RESPONSE_BYTES,
            "description": "Bytes of a response body read at most (1 MiB by default). A longer "
            "body is not read on: its connection is dropped (a new one is opened for the next "
            "event) and the status still decides.",
        },
        "follow_redirects": {
            "type": "boolean",
            "description": "Follow redirects (301, 302, 307, 308, and 303 for GET and HEAD), "
            f"at most {MAX_REDIRECTS} per attempt, keeping the method and the body, and sending "
            "credentials only to the url's own origin. A redirect not followed is an "
            "`HTTPStatusError` naming where it points, not retried. Default: `true` for GET "
            "and HEAD, `false` for the other methods.",
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
            "default": ["2xx"],
            "description": "Statuses counted as delivered: codes (100-599) and classes such as "
            '`"2xx"`. It replaces the default, so write `["2xx", 404]` to add 404.',
        },
        "disable_on_gone": {
            "type": "boolean",
            "default": True,
            "description": "A `410 Gone` answer disables the listener: that notification is "
            "not retried, and later ones are not sent but fail at once with "
            "`ListenerDisabled` (logged, counted, spooled like any failure) until "
            "`app.enable(name)`. `false`: a 410 is an ordinary `HTTPStatusError`.",
        },
        "allow_hosts": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "When the url takes its host from event data, each request's host "
            "is resolved first and refused (a `DeliveryError`, not retried) if an address is "
            "loopback, private, link-local, multicast, unspecified or reserved, unless listed "
            "here: host names, addresses or networks (`hooks.internal`, `10.0.0.5`, "
            "`10.0.0.0/8`). A host written in the url is trusted and not checked. See "
            "[Hosts from event data](#hosts-from-event-data).",
        },
        **CLOUDEVENTS_PROPERTIES,
        "requests_kwargs": {
            **_MAPPING,
            "description": "Options of the request, named as requests names them: "
            + ", ".join(f"`{k}`" for k in PASSED)
            + "; and `timeout` and `allow_redirects`, other names for the listener's `timeout` "
            "and `follow_redirects` (give one name or the other, not both). "
            + ", ".join(f"`{k}`" for k in _CONTROLLED)
            + " are set by the listener and "
            "refused, as are unknown keys. Every value is checked when the config is loaded. "
            "The listener sends through urllib3; requests-only options (marked so below: "
            + ", ".join(f"`{k}`" for k in REQUESTS_ONLY)
            + ", an `auth` object from Python) make it send through requests instead "
            "(`pip install 'eventisc[http]'`). See [Clients](#clients).",
            "properties": {
                "headers": {
                    **_MAPPING,
                    "description": "Constant headers of every request. Values must be "
                    "latin-1 text without line breaks.",
                },
                "auth": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "`[user, password]` for HTTP Basic auth (a YAML list "
                    "becomes the tuple requests expects); latin-1 text without line breaks. "
                    "From Python, a requests auth object (requests only).",
                },
                "verify": {
                    "type": ["boolean", "string"],
                    "default": True,
                    "description": "Check TLS certificates, or the path of a CA bundle (a PEM "
                    "file or a directory) to check them with, such as a private CA's. `false` "
                    "checks nothing and is insecure. See [TLS](#tls).",
                },
                "cert": {
                    "type": ["string", "array"],
                    "description": "A client certificate file (PEM, the key included), or "
                    "`[cert, key]` files, for receivers that require one; the files must exist "
                    "when the config is loaded. The key must not be encrypted.",
                },
                "allow_redirects": {
                    "type": "boolean",
                    "description": "Another name for the listener's `follow_redirects` (give "
                    "only one of them).",
                },
                "proxies": {
                    **_MAPPING,
                    "description": "A proxy URL per scheme (`http`, `https`), with a valid "
                    "host and port, and `no_proxy`. `socks5://` needs "
                    "`pip install 'requests[socks]'`.",
                },
                "cookies": {
                    **_MAPPING,
                    "description": "Cookies (name: text without control characters or `;`) "
                    "sent with every request to the url's origin (requests only).",
                },
                "hooks": {
                    **_MAPPING,
                    "description": "From Python, requests' hooks: `{response: callable or "
                    "[callables]}`, each called with every response (requests only).",
                },
                "adapters": {
                    **_MAPPING,
                    "description": "From Python, requests transport adapters to mount on the "
                    "listener's session: `{url prefix: adapter}` (requests only). The "
                    "`deadline` bounds only the listener's own connections.",
                },
                "timeout": {
                    "description": "Another name for the listener's `timeout` (give only one "
                    "of them), so event-isc configs keep working."
                },
            },
        },
    },
    "required": ["url"],
}


def take_alias(options: dict[str, Any], key: str, value: Any) -> tuple[Any, str]:
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


def check_header_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigError(f"{name!r} is not a valid header name", path)


def parse_idempotency_header(name: Any, *given: Iterable[str]) -> str | None:
    """The header to send the notification id in: ``name``, or None when it is None or when
    one of the header names ``given`` (the listener's own headers) is the same, any case.

    Raises :class:`ConfigError` at ``idempotency_header`` for a value that is not a header
    name, or a header that requests or the listener set themselves (``Content-Type``...).
    """
    if name is None:
        return None
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigError(
            f"must be a header name (such as {DEFAULT_IDEMPOTENCY_HEADER}) or null, not {name!r}",
            "idempotency_header",
        )
    lowered = name.lower()
    if lowered in _FRAMING_HEADERS:
        raise ConfigError(
            f"{name} is written by the listener itself; choose another header name",
            "idempotency_header",
        )
    for names in given:
        if any(isinstance(other, str) and other.lower() == lowered for other in names):
            return None  # the listener's own header of that name is sent instead
    return name


def check_url(
    url: str,
    error: type[ConfigError] | type[TemplateError],
    path: str,
    *,
    scheme_only: bool = False,
    full: bool = False,
) -> None:
    """Raise ``error`` (a :class:`ConfigError` at ``path``, or a :class:`TemplateError`) when
    ``url`` is not an http(s) URL that can be sent.

    ``scheme_only`` checks only the scheme (the start of a templated url); ``full`` also
    prepares the url as requests will when sending (slower: for urls checked once, at load).
    """
    problem = url_problem(url, scheme_only)
    if problem is None and full:
        problem = _requests_problem(url)
    if problem is None:
        return
    message = f"url {mask_url(url)!r} {problem}"
    if error is ConfigError:
        raise ConfigError(message, path)
    raise TemplateError(message)


def check_url_start(url: str) -> None:
    """Check what a templated url fixes at load: no control character anywhere, the scheme,
    and the host and port when they end before the first field. Raises :class:`ConfigError`."""
    if _CONTROL.search(url):
        check_url(url, ConfigError, "url")  # reports the control character
    start = url.split("{", 1)[0]
    match = _AUTHORITY.match(start)
    if match is not None and match.end() < len(start):
        check_url(match.group() + "/", ConfigError, "url", full=True)
    elif "://" in start:
        check_url(start, ConfigError, "url", scheme_only=True)


def url_problem(url: str, scheme_only: bool = False) -> str | None:
    """What makes ``url`` unusable as an http(s) URL, or None. Cheap: run on every render of
    a templated url."""
    if _CONTROL.search(url):
        return "holds a control character (a line break, tab or NUL); URL-encode such values"
    if _SURROGATE.search(url):
        return "holds a lone surrogate (as from a bad decode), which is no text to send"
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            return "is not an http:// or https:// URL with a host"
        if scheme_only:
            return None
        if _BARE_IPV6.fullmatch(parts.netloc.rpartition("@")[2]):
            return "holds an IPv6 address without brackets: write it as http://[::1]:8080/"
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a bad port, or unbalanced brackets
        return f"has a bad host or port ({exc}); a port is a number from 1 to 65535"
    if not host:
        return "is not an http:// or https:// URL with a host"
    if port == 0:
        return "has port 0; a port is a number from 1 to 65535"
    if _SPACE.search(host):
        return f"has a space in its host {host!r}"
    return None


def _requests_problem(url: str) -> str | None:
    """What urllib3 (or requests) would refuse in ``url`` when sending, found now."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        host = parse_url(url).host or ""
        if host.startswith(("*", ".")):
            raise ValueError(f"Invalid URL {url!r}: the host starts with {host[0]!r}")
        host.encode("idna")  # as urllib3 does before connecting: empty or too long labels
    except (LocationParseError, ValueError) as exc:  # UnicodeError too
        return f"is not a valid URL: {mask_url(str(exc))}"
    return None


def needs_requests(options: Mapping[str, Any]) -> str | None:
    """Why the checked ``requests_kwargs`` need requests to send (a requests-only option, an
    auth object), or None when urllib3 can honour them all."""
    given = [f"`{k}`" for k in REQUESTS_ONLY if options.get(k) is not None]
    if callable(options.get("auth")):
        given.append("an `auth` object")
    return ", ".join(given) or None


def may_be_mapping(data: Any) -> bool:
    if isinstance(data, Mapping):
        return True
    if isinstance(data, str) and has_fields(data):
        try:
            parts = split_fields(data)
        except ValueError:
            return True  # the template compiler reports it with its path
        return len(parts) == 1 and not isinstance(parts[0], str)
    return False


def form_encode(value: Any, what: str) -> str:
    """``value`` (a rendered mapping) as ``application/x-www-form-urlencoded`` text, as for a
    form body or a query string. Raises :class:`TemplateError` naming what cannot be encoded.
    """
    try:
        return urlencode(form_pairs(value, what))
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise TemplateError(
            f"cannot encode {what}: {bad!r} cannot be encoded as UTF-8 (a lone surrogate, as "
            "from a bad decode); fix the data or replace it"
        ) from None


def form_pairs(value: Any, what: str) -> list[tuple[str, str]]:
    """Flatten a rendered mapping to (key, text) pairs for a form body or a query string.

    Lists repeat the key; None is left out; booleans are ``True``/``False`` (as requests
    writes them). Raises :class:`TemplateError` naming the field that is not flat.
    """
    if not isinstance(value, Mapping):
        raise TemplateError(
            f"cannot form-encode {what}: it renders to a {type(value).__name__}, not a mapping"
        )
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        path = f"{what}.{key}"
        if isinstance(item, (list, tuple, set, frozenset)):
            texts = [_form_text(e, f"{path}[{i}]") for i, e in enumerate(item)]
        else:
            texts = [_form_text(item, path)]
        pairs.extend((str(key), text) for text in texts if text is not None)
    return pairs


def _form_text(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    kind = "mapping" if isinstance(value, Mapping) else type(value).__name__
    raise TemplateError(
        f"cannot form-encode {path}: it is a {kind}; a form field holds text, a number, a "
        "boolean or a list of them (use request_format: json for nested data)"
    )


def set_header(headers: dict[str, str], name: str, value: Any) -> None:
    """Set a rendered header (None leaves it out); :class:`TemplateError` for a value that
    cannot be sent."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TemplateError(f"header {name} renders to a {type(value).__name__}, not text")
    text = str(value)
    problem = _header_problem(text)
    if problem is not None:
        raise TemplateError(f"header {name} renders to text with {problem}")
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = text


def _header_problem(text: str) -> str | None:
    if _BREAK.search(text):
        return "a line break"
    if not text.isascii():
        try:
            text.encode("latin-1")  # what http.client sends a header value as
        except UnicodeEncodeError:
            return (
                "characters outside latin-1, which HTTP headers cannot carry; "
                "percent-encode the value or send it in the body"
            )
    return None


def parse_seconds(value: Any, path: str) -> float:
    """``value`` as seconds: a finite number > 0, at most :data:`MAX_SECONDS`; else
    :class:`ConfigError` at ``path``."""
    return seconds_option(value, path, maximum=MAX_SECONDS)


def parse_timeout(value: Any, path: str) -> float | tuple[float, float]:
    """``timeout`` (seconds, or [connect, read] seconds) as requests takes it.

    Raises :class:`ConfigError` at ``path`` for anything but finite seconds > 0 (at most a day).
    """
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (parse_seconds(value[0], path), parse_seconds(value[1], path))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"timeout must be seconds > 0 or [connect, read] seconds, not {value!r}", path
        )
    return parse_seconds(value, path)


def parse_byte_count(value: Any, path: str) -> int:
    """``value`` as a number of bytes (a whole number >= 0); else :class:`ConfigError`."""
    return count_option(value, path)


#: The default success statuses (shared: every listener would otherwise hold its own copy).
ANY_2XX = frozenset(range(200, 300))


def parse_statuses(value: Any) -> frozenset[int]:
    if value is None:
        return ANY_2XX
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            "success_status must be a list of statuses such as [200, 404]", "success_status"
        )
    codes: set[int] = set()
    for index, item in enumerate(value):
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
        elif isinstance(item, str) and re.fullmatch(r"[1-5][xX][xX]", item):
            start = int(item[0]) * 100
            codes.update(range(start, start + 100))
        else:
            raise ConfigError(
                f'{item!r} is not a status (100-599) or a class like "2xx"',
                f"success_status[{index}]",
            )
    return frozenset(codes)


def requests_options(options: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Split requests_kwargs (without its aliases) into constant headers and the keywords
    passed to requests.

    Every value is checked here, at load, so that requests never meets a setting it fails on
    while sending. Raises :class:`ConfigError` at ``requests_kwargs.<key>``.
    """
    for key in options:
        if key in _CONTROLLED:
            raise ConfigError(
                f"`{key}` is set by the listener and cannot be a requests option: "
                f"{_CONTROLLED[key]}",
                f"requests_kwargs.{key}",
            )
        if key not in PASSED:
            raise ConfigError(
                f"unknown requests option {key!r} (requests_kwargs take: "
                f"{', '.join((*PASSED, *ALIASES))})",
                f"requests_kwargs.{key}",
            )
    static = _static_headers(options.pop("headers", None) or {})
    for key, check in _CHECKS.items():
        if options.get(key) is not None:
            options[key] = check(options[key], f"requests_kwargs.{key}")
    return static, options


def _static_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ConfigError("must be a mapping of header names to text", "requests_kwargs.headers")
    static: dict[str, str] = {}
    for name, value in headers.items():
        check_header_name(name, "requests_kwargs.headers")
        path = f"requests_kwargs.headers.{name}"
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"header {name} must be text", path)
        problem = _header_problem(str(value))
        if problem is not None:
            raise ConfigError(f"header {name} holds {problem}", path)
        static[name] = str(value)
    return static


def _auth(auth: Any, path: str) -> Any:
    if callable(auth):
        return auth  # a requests auth object, from Python
    # YAML has no tuples; requests wants (user, password).
    if not isinstance(auth, (list, tuple)) or len(auth) != 2:
        raise ConfigError("auth must be [user, password] or a requests auth object", path)
    if not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in auth):
        raise ConfigError("auth must be [user, password]", path)
    user, password = str(auth[0]), str(auth[1])
    try:
        (user + password).encode("latin-1")  # what requests encodes Basic credentials as
    except UnicodeEncodeError:
        raise ConfigError(
            "Basic auth credentials must be latin-1 text (requests encodes them so)", path
        ) from None
    return (user, password)


def _verify(verify: Any, path: str) -> Any:
    if not isinstance(verify, (bool, str)):
        raise ConfigError(f"verify must be true, false or a CA bundle path, not {verify!r}", path)
    # requests would find out only when sending, on every attempt.
    if isinstance(verify, str) and not os.path.exists(verify):
        raise ConfigError(
            f"no such CA bundle file or directory {verify!r} (a relative path is read from the "
            "working directory)",
            path,
        )
    return verify


def _cert(cert: Any, path: str) -> Any:
    if isinstance(cert, str):
        files: tuple[str, ...] = (cert,)
    elif (
        isinstance(cert, (list, tuple)) and len(cert) == 2 and all(isinstance(c, str) for c in cert)
    ):
        files = tuple(cert)
    else:
        raise ConfigError("cert must be a file or [cert file, key file]", path)
    # requests would find out only when sending, on every attempt.
    for what, file in zip(("client certificate", "key"), files, strict=False):
        if not os.path.isfile(file):
            raise ConfigError(
                f"no such {what} file {file!r} (a relative path is read from the working "
                "directory)",
                path,
            )
    return files[0] if isinstance(cert, str) else files


def _proxies(proxies: Any, path: str) -> dict[str, str]:
    if not isinstance(proxies, Mapping):
        raise ConfigError("proxies must be a mapping of scheme (http, https) to proxy URL", path)
    for key, proxy in proxies.items():
        where = f"{path}.{key}"
        if not isinstance(proxy, str):
            raise ConfigError(f"a proxy is a URL (text), not {proxy!r}", where)
        if key == "no_proxy":
            continue  # hosts, not a URL
        scheme, sep, rest = proxy.partition("://")
        if not sep:
            scheme, rest = "http", proxy  # requests reads a bare host:port as http://
        if scheme.lower().startswith("socks") and importlib.util.find_spec("socks") is None:
            raise ConfigError("a SOCKS proxy needs PySocks: pip install 'requests[socks]'", where)
        problem = url_problem(f"http://{rest}")  # the host and port, whatever the scheme
        if problem is not None:
            raise ConfigError(f"proxy {mask_url(proxy)!r}: the URL {problem}", where)
    return dict(proxies)


def _cookies(cookies: Any, path: str) -> dict[str, str]:
    if not isinstance(cookies, Mapping):
        raise ConfigError("cookies must be a mapping of names to text", path)
    for name, value in cookies.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ConfigError(f"{name!r} is not a valid cookie name", path)
        text_ok = isinstance(value, str) and _header_problem(value) is None
        if not text_ok or _CONTROL.search(value) or ";" in value:
            raise ConfigError(
                f"cookie {name} must be latin-1 text without control characters or `;`",
                f"{path}.{name}",
            )
    return dict(cookies)


def _hooks(hooks: Any, path: str) -> dict[str, list[Any]]:
    if not isinstance(hooks, Mapping):
        raise ConfigError("hooks must be a mapping of `response` to callables", path)
    checked: dict[str, list[Any]] = {}
    for event, given in hooks.items():
        if event != "response":
            raise ConfigError(f"requests has no {event!r} hook (only `response`)", path)
        callables = list(given) if isinstance(given, (list, tuple)) else [given]
        if not all(callable(c) for c in callables):
            raise ConfigError("a hook must be a callable (from Python)", f"{path}.{event}")
        checked[event] = callables
    return checked


def _adapters(adapters: Any, path: str) -> dict[str, Any]:
    if not isinstance(adapters, Mapping):
        raise ConfigError("adapters must be a mapping of url prefixes to adapters", path)
    for prefix, adapter in adapters.items():
        if not isinstance(prefix, str) or not callable(getattr(adapter, "send", None)):
            raise ConfigError(
                "an adapter is a requests transport adapter (from Python), mounted on a url "
                "prefix such as `https://`",
                f"{path}.{prefix}",
            )
    return dict(adapters)


#: The requests_kwargs checked at load, with their check.
_CHECKS = {
    "adapters": _adapters,
    "hooks": _hooks,
    "auth": _auth,
    "verify": _verify,
    "cert": _cert,
    "proxies": _proxies,
    "cookies": _cookies,
}


def environment_settings(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords for requests to ``url``'s origin: ``options`` with what a requests Session
    that trusts the environment would add (``HTTP(S)_PROXY``/``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``), resolved once.

    requests resolves these for every request, scanning ``os.environ`` and looking for a
    netrc file each time: about a quarter of its own time per request.
    """
    from requests.utils import get_environ_proxies, get_netrc_auth

    settings = dict(options)
    proxies = dict(options.get("proxies") or {})
    for scheme, proxy in get_environ_proxies(url, no_proxy=proxies.get("no_proxy")).items():
        proxies.setdefault(scheme, proxy)
    if proxies:
        settings["proxies"] = proxies
    if options.get("verify", True) is True:
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            settings["verify"] = bundle
    if options.get("auth") is None:
        auth = get_netrc_auth(url)
        if auth:
            settings["auth"] = auth
    return settings
