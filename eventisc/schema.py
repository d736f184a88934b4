"""The JSON Schema of the configuration, and validation that names the offending value.

The top level is :data:`CONFIG_SCHEMA`. Every listener shares :data:`LISTENER_PROPERTIES`; each
kind adds its own options through its class attribute ``schema`` (``{"properties": {...},
"required": [...]}``). :func:`config_schema` assembles the whole document (``eventisc schema``
prints it), for editors and for validating configs outside Python.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._fork import on_fork
from .errors import ConfigError
from .settings import DELIVERY_MODES, DISPATCHER_SCHEMA, RETRY_SCHEMA

if TYPE_CHECKING:
    from .listeners.base import Listener

__all__ = [
    "CONFIG_SCHEMA",
    "LISTENER_PROPERTIES",
    "config_schema",
    "format_path",
    "listener_schema",
    "validate",
    "validate_options",
]

_POSITIVE_SECONDS = {"type": "number", "exclusiveMinimum": 0}

#: Options every listener takes, whatever its kind.
LISTENER_PROPERTIES: dict[str, Any] = {
    "kind": {"type": "string", "description": "Listener kind: http, celery, rabbit or custom."},
    "name": {
        "type": "string",
        "minLength": 1,
        "description": "Stable name used in logs and errors (default: kind:event_name).",
    },
    "event_name": {"type": "string", "minLength": 1, "description": "Exact full event name."},
    "event_name_regex": {
        "type": "string",
        "minLength": 1,
        "description": "Regex matched at the start of the full event name (re.match).",
    },
    "filter": {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"type": "string"}},
        "description": "Keeps only some events, e.g. {kind: expr, expr: \"event_data['n'] > 1\"}.",
    },
    "delivery": {"enum": list(DELIVERY_MODES), "description": "Default: the app's."},
    "retry": RETRY_SCHEMA,
    "durable": {"type": "boolean", "description": "Spool before trigger returns (background)."},
    "priority": {"type": "integer", "description": "Background queue order: lower first."},
}

#: The top level of a config file.
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "eventisc configuration",
    "type": "object",
    "properties": {
        "name_prefix": {
            "type": ["string", "null"],
            "description": "Prepended to every triggered event name.",
        },
        "listeners": {
            "type": ["array", "null"],
            "description": "The listeners, each checked against its kind's schema.",
        },
        "raise_errors": {
            "type": "boolean",
            "description": "trigger() raises TriggerError after all listeners ran if any failed.",
        },
        "dry_run": {
            "type": "boolean",
            "description": "Render and log, never deliver (default: EVENTISC_DRYRUN).",
        },
        "heartbeat": {
            **_POSITIVE_SECONDS,
            "description": "Start a heartbeat thread with this interval in seconds.",
        },
        "delivery": {
            "enum": list(DELIVERY_MODES),
            "description": "sync (default): deliver in trigger(); background: queue and return.",
        },
        "retry": RETRY_SCHEMA,
        "dispatcher": DISPATCHER_SCHEMA,
        "spool": {
            "type": ["object", "string"],
            "additionalProperties": False,
            "required": ["path"],
            "properties": {"path": {"type": "string", "minLength": 1}},
            "description": "{path: FILE}: the SQLite file keeping failed, refused and durable "
            "notifications (a plain path works too).",
        },
        "durable": {
            "type": "boolean",
            "description": "Background: write each notification to the spool before trigger "
            "returns, remove it once delivered.",
        },
        "report_interval": {
            **_POSITIVE_SECONDS,
            "description": "Log a one-line summary of the stats every N seconds (default off).",
        },
        "recover": {
            "type": "boolean",
            "description": "Background: at start, deliver what earlier processes left pending "
            "in the spool (default true).",
        },
    },
    "additionalProperties": False,
}

_validators: dict[int, Any] = {}
_validators_lock = threading.Lock()


@on_fork
def _new_lock() -> None:
    global _validators_lock
    _validators_lock = threading.Lock()


def _validator(schema: Mapping[str, Any]) -> Any:
    key = id(schema)
    validator = _validators.get(key)
    if validator is None:
        validator = _validator_class()(schema)
        with _validators_lock:
            _validators[key] = validator
    return validator


_classes: list[Any] = []


def _validator_class() -> Any:
    """Draft 2020-12, where a ``number`` is finite: YAML's ``.inf`` and ``.nan`` are no
    durations, and eventisc never waits forever."""
    if not _classes:
        import jsonschema  # imported on first load only: it is slow to import

        base = jsonschema.Draft202012Validator
        checker = base.TYPE_CHECKER.redefine(
            "number", lambda checker, value: _is_number(value) and math.isfinite(value)
        )
        _classes.append(jsonschema.validators.extend(base, type_checker=checker))
    return _classes[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def format_path(parts: Iterable[Any], prefix: str = "") -> str:
    """``listeners``, 1, ``url`` -> ``listeners[1].url``."""
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def validate(
    instance: Any,
    schema: Mapping[str, Any],
    path: str = "",
    what: str = "the config",
    source: str | None = None,
) -> None:
    """Validate ``instance``; raise :class:`ConfigError` for the most relevant problem.

    ``path`` locates ``instance`` in the config; ``what`` names it in messages
    (``http listeners take: ...``).
    """
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(instance))
    if error is None:
        return
    where = format_path(error.absolute_path, path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(str(k) for k in error.instance if k not in allowed)[0]
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"unknown option {unknown!r}{hint} ({what} take: {', '.join(allowed)})"
        where = format_path([unknown], where)
    elif _not_finite(error.instance):
        message = f"must be a finite number, not {error.instance!r}"
    else:
        message = error.message
    raise ConfigError(message, where or None, source)


def validate_options(
    schema: Mapping[str, Any] | None, options: Mapping[str, Any], path: str, what: str
) -> None:
    """Validate a kind's own options against its partial schema (None accepts anything)."""
    if schema is None:
        return
    full = _options_schema(schema)
    validate(options, full, path, what)


_options_schemas: dict[int, dict[str, Any]] = {}


def _options_schema(partial: Mapping[str, Any]) -> dict[str, Any]:
    full = _options_schemas.get(id(partial))
    if full is None:
        full = {"type": "object", "additionalProperties": False, **partial}
        full.setdefault("properties", {})
        _options_schemas[id(partial)] = full
    return full


_listener_schemas: dict[type[Listener], dict[str, Any]] = {}


def listener_schema(cls: type[Listener]) -> dict[str, Any]:
    """The whole JSON Schema of one listener kind: the common options plus the kind's own.

    A kind whose ``schema`` is None accepts any further options.
    """
    cached = _listener_schemas.get(cls)
    if cached is not None:
        return cached
    own = cls.schema
    full: dict[str, Any] = {"type": "object"}
    if own is None:
        full["properties"] = dict(LISTENER_PROPERTIES)
        full["additionalProperties"] = True
        full["required"] = ["kind"]
    else:
        full.update({k: v for k, v in own.items() if k not in ("properties", "required")})
        full["properties"] = {**LISTENER_PROPERTIES, **own.get("properties", {})}
        full["required"] = ["kind", *own.get("required", [])]
        full["additionalProperties"] = False
    _listener_schemas[cls] = full
    return full


def config_schema() -> dict[str, Any]:
    """The whole configuration's JSON Schema, with one branch per kind that can be imported."""
    from .listeners.base import Listener

    branches = []
    for kind in Listener.registry.known():
        try:
            cls = Listener.registry.get(kind)
        except ConfigError:
            continue  # its driver is not installed
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": listener_schema(cls),
            }
        )
    schema = dict(CONFIG_SCHEMA)
    properties = dict(schema["properties"])
    properties["listeners"] = {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": Listener.registry.known()}},
            "allOf": branches,
        },
    }
    schema["properties"] = properties
    return schema
