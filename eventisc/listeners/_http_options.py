"""Checking the ``http`` kind's options at load, and encoding its values at render."""

from __future__ import annotations

import datetime
import decimal
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, TemplateError
from ..template import has_fields, split_fields
from .base import mask_url

__all__ = [
    "check_header_name",
    "check_url",
    "environment_settings",
    "form_pairs",
    "may_be_mapping",
    "parse_statuses",
    "parse_timeout",
    "requests_options",
    "set_header",
]

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
#: requests_kwargs passed on to requests.
PASSED = ("headers", "auth", "verify", "cert", "allow_redirects", "proxies", "cookies")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_header_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigError(f"{name!r} is not a valid header name", path)


def check_url(
    url: str,
    error: type[ConfigError] | type[TemplateError],
    path: str,
    scheme_only: bool = False,
) -> None:
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and (scheme_only or bool(parts.hostname))
    except ValueError:
        ok = False
    if not ok:
        message = f"url {mask_url(url)!r} is not an http:// or https:// URL with a host"
        if error is ConfigError:
            raise ConfigError(message, path)
        raise TemplateError(message)


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
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TemplateError(f"header {name} renders to a {type(value).__name__}, not text")
    text = str(value)
    if any(c in text for c in "\r\n\0"):
        raise TemplateError(f"header {name} renders to text with a line break")
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = text


def parse_timeout(value: Any, path: str) -> float | tuple[float, float]:
    def seconds(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ConfigError(
                f"timeout must be seconds > 0 or [connect, read] seconds, not {value!r}", path
            )
        return float(v)

    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (seconds(value[0]), seconds(value[1]))
    return seconds(value)


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
    """Split requests_kwargs into constant headers and the keywords passed to requests."""
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
                f"{', '.join((*PASSED, 'timeout'))})",
                f"requests_kwargs.{key}",
            )
    headers = options.pop("headers", None) or {}
    if not isinstance(headers, Mapping):
        raise ConfigError("must be a mapping of header names to text", "requests_kwargs.headers")
    static: dict[str, str] = {}
    for name, value in headers.items():
        check_header_name(name, "requests_kwargs.headers")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"header {name} must be text", f"requests_kwargs.headers.{name}")
        static[name] = str(value)
    auth = options.get("auth")
    if isinstance(auth, (list, tuple)):
        # YAML has no tuples; requests wants (user, password).
        if len(auth) != 2 or not all(isinstance(a, (str, int)) for a in auth):
            raise ConfigError("auth must be [user, password]", "requests_kwargs.auth")
        options["auth"] = (str(auth[0]), str(auth[1]))
    elif auth is not None and not callable(auth):
        raise ConfigError(
            "auth must be [user, password] or a requests auth object", "requests_kwargs.auth"
        )
    cert = options.get("cert")
    if isinstance(cert, (list, tuple)):
        if len(cert) != 2:
            raise ConfigError(
                "cert must be a file or [cert file, key file]", "requests_kwargs.cert"
            )
        options["cert"] = tuple(cert)
    return static, options


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
