"""Reading the ``rabbit`` kind's AMQP URL into pika's connection parameters, at load.

``pika.URLParameters`` trusts its input: a URL without ``//`` raises ``IndexError``, a query
option it evaluates as a Python literal (``ssl_options``, ``tcp_options``,
``client_properties``) raises ``SyntaxError``, a missing CA file ``FileNotFoundError``, and
some mistakes pass silently (an ``http://`` scheme, a missing host taken as localhost, a
``nan`` timeout, a path of two segments whose second is dropped). :func:`connection_parameters`
checks the URL's shape first and turns whatever pika raises into a :class:`ConfigError` that
says which part of the URL is wrong; then what pika would ignore or find missing only when
connecting (an unknown ``ssl_options`` key, ``cert_reqs`` 0, a missing CA directory).
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
import ssl
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pika

from ...errors import ConfigError
from ..base import mask_url

__all__ = ["connection_parameters", "shown_url"]

#: The URL options pika reads as seconds: pika takes any float, nan and inf included.
_SECONDS = ("socket_timeout", "stack_timeout", "blocked_connection_timeout", "retry_delay")
#: Seconds the listener's ``timeout`` sets unless the URL gives them.
_BOUNDED_BY_TIMEOUT = ("socket_timeout", "stack_timeout", "blocked_connection_timeout")
#: ``ssl_options`` keys that name files.
_FILES = ("ca_certs", "cafile", "ca_path", "capath", "certfile", "keyfile")
#: ``ssl_options`` keys that name a directory.
_DIRECTORIES = ("ca_path", "capath")
#: The ``ssl_options`` keys pika 1.x reads; it ignores any other without a word.
_SSL_KEYS = (*_FILES, "ca_data", "cadata", "password", "ciphers", "protocol", "server_hostname")
#: Keys of ``ssl.wrap_socket`` that older pika took and pika 1.x ignores: accepted (configs
#: written for older pika keep loading) but for ``cert_reqs`` asking for no check.
_LEGACY_SSL_KEYS = ("cert_reqs", "ssl_version", "do_handshake_on_connect", "suppress_ragged_eofs")
#: AMQP's heartbeat is an unsigned short.
_MAX_HEARTBEAT = 65535
#: The options pika reads with ast.literal_eval, each a dict: an example of each.
_LITERALS = {
    "ssl_options": "{'ca_certs': '/etc/ssl/ca.pem'}",
    "tcp_options": "{'TCP_KEEPIDLE': 60}",
    "client_properties": "{'connection_name': 'billing'}",
}
#: How much of a bad URL an error quotes.
_SHOWN_CHARS = 200

_EXAMPLE = "amqp://user:password@host:5672/%2F"
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def connection_parameters(url: Any, timeout: float) -> Any:
    """``pika.URLParameters`` for ``url``, with the timeouts it does not set bounded by
    ``timeout``: connecting (``socket_timeout``, ``stack_timeout``) and a blocked connection
    (``blocked_connection_timeout``), which pika would wait 10-15 s for, and forever.

    Raises :class:`ConfigError` (path ``url``) for anything pika cannot use; its message
    shows the URL as :func:`shown_url` does.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError(f"needs an AMQP URL ({_EXAMPLE})", "url")
    problem = _shape_problem(url)
    params = None
    if problem is None:
        try:
            params = pika.URLParameters(url)
        except Exception as exc:  # literal_eval and ssl raise anything: all of it is config
            raise _bad(url, _explain(url, exc)) from exc
        problem = _value_problem(params) or _ssl_problem(url)
    if problem is not None:
        raise _bad(url, problem)
    given = parse_qs(urlsplit(url).query)
    for option in _BOUNDED_BY_TIMEOUT:
        if option not in given:
            setattr(params, option, timeout)
    return params


def shown_url(url: str) -> str:
    """The URL fit for a log or an error: its password masked, and its query too when it
    mentions a password (``ssl_options`` may hold the password of a key file)."""
    base, sep, query = url.partition("?")
    if "password" in unquote(query).lower():
        query = "..."
    return mask_url(base) + sep + query


def _bad(url: str, problem: str) -> ConfigError:
    shown = shown_url(url)
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 1] + "…"
    return ConfigError(f"bad AMQP URL {shown!r}: {problem}", "url")


def _shape_problem(url: str) -> str | None:
    """What is wrong with the URL's parts (scheme, host, port, path), or None."""
    if _UNSAFE.search(url):
        return "it contains a space or a control character; percent-encode it (%20 for a space)"
    if "#" in url:
        return "it contains '#'; percent-encode it (%23), in a password too"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        return f"{exc}: write an IPv6 host in brackets (amqp://[::1]:5672/)"
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps") or not url.lower().startswith(f"{scheme}://"):
        return f"it must start with amqp:// or amqps:// ({_EXAMPLE})"
    if parts.netloc.rpartition("@")[2].count(":") > 1 and "[" not in parts.netloc:
        return "write an IPv6 host in brackets (amqp://[::1]:5672/)"
    if not parts.hostname:
        return f"it has no host ({_EXAMPLE}; write localhost if you mean it)"
    try:
        port = parts.port
    except ValueError:  # "Port out of range 0-65535", "Port could not be cast ..."
        port = 0
    if port == 0:
        return f"the port is a number from 1 to 65535, not {parts.netloc.rpartition(':')[2]!r}"
    if parts.username is not None and parts.password is None:
        return f"it names a user but no password ({_EXAMPLE})"
    return _vhost_problem(parts.path)


def _vhost_problem(path: str) -> str | None:
    vhost = path[1:]
    if "/" in vhost:
        return (
            f"the path is the virtual host, one segment, not {path!r}: write a '/' in the "
            "virtual host as %2F (the default virtual host '/' is /%2F)"
        )
    if _BAD_ESCAPE.search(vhost):
        return (
            f"the virtual host {vhost!r} has a '%' that is not a percent-escape (%XX); "
            "write a '%' as %25"
        )
    return None


def _value_problem(params: Any) -> str | None:
    """What pika accepted but cannot use (non-finite seconds, a heartbeat too large)."""
    for option in _SECONDS:
        value = getattr(params, option)
        if value is not None and not (math.isfinite(value) and value <= threading.TIMEOUT_MAX):
            return f"{option} must be a finite number of seconds, not {value!r}"
    heartbeat = params.heartbeat
    if isinstance(heartbeat, int) and heartbeat > _MAX_HEARTBEAT:
        return f"heartbeat must be 0 to {_MAX_HEARTBEAT} seconds, not {heartbeat}"
    return None


def _ssl_problem(url: str) -> str | None:
    """What pika accepted in ``ssl_options`` but would ignore, or find missing only when
    connecting: an unknown key, ``cert_reqs`` asking for no check, a missing CA directory."""
    values = parse_qs(urlsplit(url).query).get("ssl_options")
    options = ast.literal_eval(values[0]) if values else None  # pika has read it already
    if not isinstance(options, dict):
        return None
    for key in options:
        if key not in _SSL_KEYS and key not in _LEGACY_SSL_KEYS:
            close = difflib.get_close_matches(str(key), _SSL_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return (
                f"query option ssl_options: unknown key {key!r}, which pika would ignore "
                f"({hint}it reads: {', '.join(_SSL_KEYS)})"
            )
    if options.get("cert_reqs") == ssl.CERT_NONE:
        return (
            "query option ssl_options: cert_reqs 0 (no certificate check) is ignored by pika, "
            "which always checks the broker's certificate: give the CA that signed it as "
            "ca_certs"
        )
    missing = _missing_files(repr(options))
    return f"query option ssl_options: {missing}" if missing else None


def _explain(url: str, exc: Exception) -> str:
    """Which query option pika failed on (tried one by one), and why."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    for name, values in parse_qs(parts.query).items():
        try:
            pika.URLParameters(f"{base}?{urlencode({name: values[0]})}")
        except Exception as alone:
            return f"query option {name}: {_detail(name, values[0], alone)}"
    return f"{type(exc).__name__}: {exc}"


def _detail(name: str, value: str, exc: Exception) -> str:
    if name in _LITERALS:
        try:
            literal = ast.literal_eval(value)
        except Exception:
            literal = exc
        if not isinstance(literal, (dict, type(None))):
            return (
                f"it must be a Python dict such as {_LITERALS[name]} (percent-encoded in the "
                f"URL): {_why(exc)}"
            )
    if name == "ssl_options" and isinstance(exc, OSError):
        missing = _missing_files(value)
        if missing:
            return missing
    return _why(exc)


def _why(exc: Exception) -> str:
    # pika's ValueErrors and TypeErrors are sentences; other errors need their class to read.
    if type(exc) in (ValueError, TypeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _missing_files(value: str) -> str | None:
    try:
        options = ast.literal_eval(value)
    except Exception:
        return None
    if not isinstance(options, dict):
        return None
    for key in _FILES:
        path = options.get(key)
        if isinstance(path, str) and not os.path.exists(path):
            what = "directory" if key in _DIRECTORIES else "file"
            return f"{key}: no such {what} {path!r}"
    return None
