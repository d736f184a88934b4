"""The secret values eventisc knows of, kept out of everything it shows and stores.

Two kinds are registered: values a config took from the environment (``${VAR}``, registered as
``env:VAR`` when the config is loaded) and the secret fields of listeners (credential headers,
passwords in URLs, signing secrets, auth passwords: registered as ``<listener>:<field>``).
Values from the environment shorter than :data:`MIN_LENGTH` characters are not registered: a
port number or a flag (``5672``, ``false``) is not worth hiding, and hiding it would garble
every line shown. A secret field is registered from :data:`MIN_FIELD_LENGTH` characters.

- :func:`redact` replaces every registered value in a text with ``***`` (everything eventisc
  shows goes through it: see :mod:`eventisc.masking`, the errors, the log records);
- :func:`split` cuts a string about to be stored into literal parts and references to
  secrets, and :func:`lookup` gives a reference's value back when the stored notification is
  delivered: rows keep ``env:TOKEN``, never the token.

A value is also found in the forms templates and encoders write it in: escaped inside a JSON
string (reference ``key|json``), percent-encoded in a URL (``key|url``) or a form (``key|form``).
The registry is process-wide: every app of the process hides the secrets of every other.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_FIELD_LENGTH",
    "MIN_LENGTH",
    "forget",
    "lookup",
    "redact",
    "redact_bytes",
    "register",
    "registered",
    "split",
]

#: The shortest value from the environment registered as a secret.
MIN_LENGTH = 6
#: The shortest value of a secret field (a password, a credential header) registered.
MIN_FIELD_LENGTH = 3

_MASK = "***"

#: How a value is written in each form, by the reference's suffix.
_FORMS: dict[str, Callable[[str], str]] = {
    "": lambda value: value,
    "|json": lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    "|url": lambda value: quote(value, safe=""),
    "|form": lambda value: quote_plus(value, safe=""),
}

_lock = threading.Lock()
_values: dict[str, str] = {}  # key -> value
_references: dict[str, str] = {}  # each form of each value -> its reference
_pattern: re.Pattern[str] | None = None
_bytes_pattern: re.Pattern[bytes] | None = None


def register(key: str, value: Any, min_length: int = MIN_LENGTH) -> None:
    """Know ``value`` as the secret ``key`` (a later value for the same key replaces it for
    :func:`lookup`; the earlier one stays hidden). Ignored unless a string of at least
    ``min_length`` characters."""
    global _pattern, _bytes_pattern
    if not isinstance(value, str) or len(value) < min_length:
        return
    with _lock:
        if _values.get(key) == value:
            return
        _values[key] = value
        for suffix, write in _FORMS.items():
            _references[write(value)] = key + suffix  # the latest key: a listener's final name
        texts = sorted(_references, key=len, reverse=True)  # the longest form wins
        _pattern = re.compile("|".join(map(re.escape, texts)))
        _bytes_pattern = re.compile(b"|".join(re.escape(text.encode()) for text in texts))
    _install_log_redaction()


def forget() -> None:
    """Forget every registered secret (tests start from none)."""
    global _pattern, _bytes_pattern
    with _lock:
        _values.clear()
        _references.clear()
        _pattern = _bytes_pattern = None


def registered() -> bool:
    """Whether any secret is known (nothing needs hiding otherwise)."""
    return _pattern is not None


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of its forms) replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(_MASK, text)


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for bytes (a RabbitMQ body), the secrets looked for as UTF-8."""
    pattern = _bytes_pattern
    if pattern is None or not data:
        return data
    return pattern.sub(_MASK.encode(), data)


def split(value: str | bytes) -> list[Any] | None:
    """``value`` cut into literal parts (of its own type) and ``[reference]`` lists for the
    secrets in it, in order; None when it holds none."""
    pattern: Any = _bytes_pattern if isinstance(value, bytes) else _pattern
    if pattern is None:
        return None
    parts: list[Any] = []
    end = 0
    for found in pattern.finditer(value):
        parts.append(value[end : found.start()])
        text = found.group(0)
        parts.append([_references[text.decode() if isinstance(text, bytes) else text]])
        end = found.end()
    if not parts:
        return None
    parts.append(value[end:])
    return parts


def lookup(reference: str) -> str:
    """The value a reference written by :func:`split` stands for now, in its form. Raises
    KeyError naming the secret when no loaded config defines it."""
    key, bar, suffix = reference.partition("|")
    value = _values.get(key)
    write = _FORMS.get(bar + suffix)
    if value is None or write is None:
        name = key[4:] if key.startswith("env:") else key
        what = f"${{{name}}}" if key.startswith("env:") else f"the secret {key!r}"
        raise KeyError(f"it needs {what}, which the loaded config does not define")
    return write(value)


# -- log records ------------------------------------------------------------------------------

_installed = False


def _install_log_redaction() -> None:
    """Make every log record of eventisc's loggers hide the registered secrets: its message,
    its arguments and its traceback (formatted here, as ``exc_text``)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _pattern is not None and record.name.startswith("eventisc"):
            _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is shown
        return
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
