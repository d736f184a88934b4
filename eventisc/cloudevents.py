"""CloudEvents 1.0 for the http and rabbit kinds: a listener's settings (``format:
cloudevents``), the attributes of one notification, and how each protocol binding carries them.

A listener with ``format: cloudevents`` adds the attributes (``specversion``, ``id``,
``source``, ``type``, ``time``, ``subject``, ``datacontenttype``) to its payload when it
renders: ``id`` is the notification id and ``time`` the moment of rendering, so a retry, a
spool replay or an outbox relay sends the same event. The kind then carries them as its
binding says: ``binary`` mode in headers (``ce-*`` over HTTP, ``cloudEvents_*`` over AMQP) with
the data as the body; ``structured`` mode as one JSON document
(``application/cloudevents+json``). Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import ConfigError, TemplateError

if TYPE_CHECKING:
    from .template import Template

__all__ = [
    "AMQP_PREFIX",
    "CLOUDEVENTS_PROPERTIES",
    "FORMATS",
    "HTTP_PREFIX",
    "JSON_DATA_TYPE",
    "MODES",
    "PAYLOAD_KEY",
    "SOURCE_SCHEMA",
    "SPECVERSION",
    "STRUCTURED_TYPE",
    "CloudEvents",
    "amqp_headers",
    "check_source",
    "http_headers",
    "is_json_text",
    "is_json_type",
    "structured",
    "timestamp",
]

#: The CloudEvents version sent.
SPECVERSION = "1.0"
#: The values of a listener's ``format``.
FORMATS = ("plain", "cloudevents")
#: The values of ``cloudevents_mode``.
MODES = ("binary", "structured")
#: The media type of a structured event (the JSON event format).
STRUCTURED_TYPE = "application/cloudevents+json"
#: The ``datacontenttype`` of JSON data.
JSON_DATA_TYPE = "application/json"
#: The prefix of the attribute headers in HTTP binary mode.
HTTP_PREFIX = "ce-"
#: The prefix of the attribute headers in AMQP binary mode (the AMQP binding's, JMS-safe).
AMQP_PREFIX = "cloudEvents_"
#: The key of a rendered payload that holds the event's attributes (shown by dry-run and
#: capture; the request or message itself carries them already).
PAYLOAD_KEY = "cloudevent"

#: What a URI-reference (RFC 3986) may hold.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
#: Printable ASCII but space, `"` and `%`: what an HTTP header value carries unencoded.
_HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in '"%')

_SOURCE_DESCRIPTION = (
    "The CloudEvents `source` of this app's events: a non-empty URI-reference such as "
    "`https://shop.example.com/orders` or `/shop/orders`, checked when the config is loaded."
)

#: JSON Schema of the top-level ``source``.
SOURCE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": _SOURCE_DESCRIPTION + " Used by listeners with `format: cloudevents` that "
    "set no `source` of their own. See [CloudEvents](cloudevents.md).",
}

#: JSON Schema of the options the http and rabbit kinds take for CloudEvents.
CLOUDEVENTS_PROPERTIES: dict[str, Any] = {
    "format": {
        "enum": list(FORMATS),
        "default": "plain",
        "description": "`cloudevents`: send each notification as a CloudEvents 1.0 event "
        "(`id` the notification id, `type` the event name, `time` when it was rendered, the "
        "body as its data). See [CloudEvents](cloudevents.md).",
    },
    "cloudevents_mode": {
        "enum": list(MODES),
        "default": "binary",
        "description": "With `format: cloudevents`: `binary` puts the attributes in headers "
        "(`ce-*` over HTTP, `cloudEvents_*` over AMQP) and sends the data as the body; "
        "`structured` sends the whole event as one JSON document "
        f"(`{STRUCTURED_TYPE}`).",
    },
    "source": {
        "type": "string",
        "minLength": 1,
        "description": "With `format: cloudevents`: the events' `source`, a non-empty "
        "URI-reference, checked when the config is loaded. Default: the top-level `source` "
        "(one of them is required).",
    },
    "subject": {
        "description": "With `format: cloudevents`: a template of the events' `subject` "
        '(`"{event_data[user][id]}"`); rendering to `null` or `""` sends none.',
    },
}


def source_problem(value: Any) -> str | None:
    """What keeps ``value`` from being a non-empty URI-reference, or None."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty URI-reference, not {value!r}"
    if not _URI_CHARS.fullmatch(value):
        return (
            f"{value!r} is not a URI-reference: it holds characters a URI cannot (spaces, "
            "braces, non-ASCII); percent-encode them"
        )
    if _BAD_PERCENT.search(value):
        return f"{value!r} is not a URI-reference: `%` must start a %XX escape"
    if value.count("#") > 1:
        return f"{value!r} is not a URI-reference: it has more than one `#`"
    head = re.split(r"[/?#]", value, maxsplit=1)[0]
    if ":" in head and not _SCHEME.fullmatch(head.split(":", 1)[0]):
        return (
            f"{value!r} is not a URI-reference: before its first `:` comes no valid scheme "
            "(write `./a:b` for a relative path holding `:`)"
        )
    return None


def check_source(value: Any, path: str) -> str:
    """``value`` if it is a non-empty URI-reference; else :class:`ConfigError` at ``path``."""
    problem = source_problem(value)
    if problem is not None:
        raise ConfigError(problem, path)
    return str(value)


def timestamp() -> str:
    """Now, in UTC, as RFC 3339 text with microseconds (``2026-12-01T19:15:16.123456Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


class CloudEvents:
    """A listener's CloudEvents settings: its mode, its source and its subject template.

    ``source`` is the listener's own, or the app's (:meth:`use_source`, when the app adds the
    listener); a listener used without an app needs its own.
    """

    __slots__ = ("mode", "own_source", "source", "subject")

    def __init__(
        self, mode: str = "binary", source: str | None = None, subject: Template | None = None
    ):
        #: ``binary`` or ``structured``.
        self.mode = mode
        #: The listener's own ``source`` (None: the app's).
        self.own_source = source
        #: The source its events carry (None until an app gave its own, if it has none).
        self.source = source
        #: The compiled ``subject`` template, or None.
        self.subject = subject

    @classmethod
    def from_options(
        cls,
        format: Any,
        mode: Any,
        source: Any,
        subject: Any,
        compile: Callable[[Any, str], Template],
    ) -> CloudEvents | None:
        """The settings a listener's options describe; None for ``format: plain`` (or unset).
        ``compile(value, path)`` compiles the subject template (the listener's ``template``).

        Raises :class:`ConfigError` at the offending option: an unknown format or mode, a
        source that is no URI-reference, and a mode, source or subject without ``format:
        cloudevents``, and a subject template that does not compile.
        """
        if format not in (None, *FORMATS):
            raise ConfigError(f"must be one of {', '.join(FORMATS)}, not {format!r}", "format")
        if format != "cloudevents":
            given = {"cloudevents_mode": mode, "source": source, "subject": subject}
            for option, value in given.items():
                if value is not None:
                    raise ConfigError(
                        f"`{option}` is a CloudEvents option: it needs `format: cloudevents`",
                        option,
                    )
            return None
        if mode is None:
            mode = "binary"
        if mode not in MODES:
            raise ConfigError(
                f"must be one of {', '.join(MODES)}, not {mode!r}", "cloudevents_mode"
            )
        if source is not None:
            source = check_source(source, "source")
        template = compile(subject, "subject") if subject is not None else None
        return cls(mode, source, template)

    def use_source(self, default: str | None, path: str) -> None:
        """Take the app's ``default`` source unless the listener has its own.

        Raises :class:`ConfigError` at ``path`` (the listener's ``source``) when neither is set.
        """
        self.source = self.own_source or default
        if self.source is None:
            raise ConfigError(
                "`format: cloudevents` needs a `source`: set this listener's `source` or the "
                "top-level `source` (a URI-reference such as https://shop.example.com/orders)",
                path,
            )

    def attributes(
        self,
        id: str,
        event_name: str,
        context: Mapping[str, Any] | None,
        datacontenttype: str | None,
    ) -> dict[str, str]:
        """The attributes of one event; ``context`` holds the subject template's names.

        Raises :class:`TemplateError` when the subject fails, or when the listener has no
        source (used without an app).
        """
        if self.source is None:
            raise TemplateError(
                "`format: cloudevents` needs a `source`: set the listener's `source`, or add "
                "the listener to an app with a top-level `source`"
            )
        attributes = {
            "specversion": SPECVERSION,
            "id": id,
            "source": self.source,
            "type": event_name,
            "time": timestamp(),
        }
        if self.subject is not None:
            subject = self._subject(context or {})
            if subject:
                attributes["subject"] = subject
        if datacontenttype:
            attributes["datacontenttype"] = datacontenttype
        return attributes

    def _subject(self, context: Mapping[str, Any]) -> str | None:
        assert self.subject is not None
        value = self.subject.render(context)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise TemplateError(f"subject renders to a {type(value).__name__}, not text")

    def __repr__(self) -> str:
        return f"CloudEvents(mode={self.mode!r}, source={self.source!r})"


def http_headers(attributes: Mapping[str, str]) -> dict[str, str]:
    """Binary mode over HTTP: a ``ce-<name>`` header per attribute, percent-encoded as the
    HTTP binding says (``datacontenttype`` is the ``Content-Type``, set by the caller)."""
    return {
        HTTP_PREFIX + name: quote(value, safe=_HEADER_SAFE)
        for name, value in attributes.items()
        if name != "datacontenttype"
    }


def amqp_headers(attributes: Mapping[str, str]) -> dict[str, str]:
    """Binary mode over AMQP: a ``cloudEvents_<name>`` header per attribute
    (``datacontenttype`` is the ``content_type`` property, set by the caller)."""
    return {
        AMQP_PREFIX + name: value for name, value in attributes.items() if name != "datacontenttype"
    }


def is_json_type(content_type: str | None) -> bool:
    """Whether ``content_type`` is JSON (``application/json``, ``text/json``, ``...+json``)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def is_json_text(text: str) -> bool:
    """Whether ``text`` is one JSON value."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def structured(attributes: Mapping[str, str], data: str | bytes | None, json_data: bool) -> str:
    """The event as one JSON document (the JSON event format).

    ``data`` is the body sent in binary mode: JSON text (``json_data``) becomes the ``data``
    value as it is, other text a JSON string, bytes ``data_base64``; None leaves data out.
    """
    head = json.dumps(dict(attributes), ensure_ascii=False, separators=(",", ":"))
    if data is None:
        return head
    if isinstance(data, bytes):
        member = '"data_base64":' + json.dumps(base64.b64encode(data).decode("ascii"))
    elif json_data:
        member = '"data":' + data
    else:
        member = '"data":' + json.dumps(data, ensure_ascii=False)
    return f"{head[:-1]},{member}}}"
