"""Keeping secrets out of what eventisc shows: logs, dry-run output, the command line.

What is sent is never changed; what is *shown* of it goes through :func:`mask_url` (a URL's
password) and :func:`mask_payload` (every such URL in a notification's payload, and the values
of headers that carry credentials). Both also hide every value the config took from the
environment and every secret field a listener registered (:mod:`eventisc.secret_values`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .secret_values import redact, redact_bytes

__all__ = ["MASK", "SENSITIVE_HEADERS", "mask_payload", "mask_url"]

#: What a secret is shown as.
MASK = "***"

#: Header names (any case) whose values are credentials.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
    }
)

# user:password@ after a scheme's "://", or at the start (a URL written without its scheme).
_PASSWORD = re.compile(r"((?:^|://)[^/@:\s]*:)[^/@\s]*@")
# password=... in a libpq conninfo string (quoted with '' and backslash escapes, or a word).
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)")


def mask_url(url: str) -> str:
    """The URL (or any text holding URLs, or a libpq conninfo string) with passwords
    replaced: ``amqp://guest:***@host:5672/``, ``host=db password=***``."""
    if "password" in url:
        url = _CONNINFO_PASSWORD.sub(rf"\1{MASK}", url)
    return redact(_PASSWORD.sub(rf"\1{MASK}@", url))


def mask_payload(value: Any) -> Any:
    """A copy of ``value`` fit to show: URL passwords and credential headers masked.

    Mappings, lists and tuples are copied as they are walked; other values are returned as
    they are.
    """
    if isinstance(value, str):
        return mask_url(value) if "://" in value else redact(value)
    if isinstance(value, bytes):
        return redact_bytes(value)
    if isinstance(value, Mapping):
        return {
            key: MASK
            if isinstance(key, str) and key.lower() in SENSITIVE_HEADERS and item is not None
            else mask_payload(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(mask_payload(item) for item in value)
    return value
