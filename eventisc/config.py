"""The config layer: reading configs (YAML or JSON files, file objects, dicts, the
environment), checking them, and building what they describe: the settings values, the spool,
and each listener's :class:`~eventisc.settings.Plan`.

Everything about a config is checked when it is loaded: the schema, each listener's kind and
options, regexes, templates and filter expressions, and how its options combine with the app's.
Errors are :class:`ConfigError` naming the file and the path of the offending value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Union

from .errors import ConfigError
from .listeners.base import Listener, listener_schema
from .schema import validate
from .settings import (
    DEFAULT_BACKGROUND,
    DEFAULT_SYNC,
    DELIVERY_MODES,
    DISPATCHER_SCHEMA,
    RETRY_SCHEMA,
    Plan,
    RetryPolicy,
    env_flag,
)

if TYPE_CHECKING:
    from .spool import Spool

__all__ = [
    "CONFIG_SCHEMA",
    "ConfigSource",
    "config_schema",
    "env_flag",
    "open_spool",
    "read_config",
    "resolve_plan",
    "validate_config",
]

_POSITIVE_SECONDS = {"type": "number", "exclusiveMinimum": 0}

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

ConfigSource = Union[str, "os.PathLike[str]", IO[str], IO[bytes], Mapping[str, Any]]


def read_config(source: ConfigSource) -> tuple[dict[str, Any], str | None]:
    """Read a config from a path, a file object or a mapping.

    Paths ending in ``.yaml``/``.yml`` are YAML, other paths JSON (as in event-isc); a file
    object is read as JSON, else as YAML. Returns the mapping and a name for messages.
    """
    if isinstance(source, Mapping):
        return dict(source), None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = str(name) if isinstance(name, str) else "<config>"
        text = source.read()
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        yaml_first = label.endswith((".yaml", ".yml"))
        return _parse(text, label, "yaml" if yaml_first else "any"), label
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=path) from None
    fmt = "yaml" if path.endswith((".yaml", ".yml")) else "json"
    return _parse(text, path, fmt), path


def _parse(text: str, label: str, fmt: str) -> dict[str, Any]:
    if fmt in ("json", "any"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if fmt == "json":
                raise ConfigError(
                    f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} "
                    "(files not ending in .yaml or .yml are read as JSON)",
                    source=label,
                ) from None
        else:
            return _top_level(data, label)
    import yaml

    # libyaml's loader when PyYAML was built with it: several times faster on big configs.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{where}: {problem}", source=label) from None
    return _top_level(data, label)


def _top_level(data: Any, label: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping with `listeners`, not {type(data).__name__}",
            source=label,
        )
    return data


def validate_config(config: Mapping[str, Any], source: str | None = None) -> None:
    """Check the top-level keys (listeners are checked one by one when they are built)."""
    validate(config, CONFIG_SCHEMA, "", "configs", source)


def open_spool(value: Any) -> Spool | None:
    """The spool a config's ``spool`` names: a :class:`~eventisc.spool.Spool`, a path, or
    ``{path: ...}``; None for None. A spool that cannot be opened is a ConfigError."""
    if value is None:
        return None
    from .spool import Spool, SpoolError  # sqlite3, only for apps that have a spool

    if isinstance(value, Spool):
        return value
    path = value["path"] if isinstance(value, Mapping) else value
    try:
        return Spool(path)
    except SpoolError as exc:
        raise ConfigError(str(exc), "spool.path") from None


def resolve_plan(
    listener: Listener,
    path: str,
    *,
    delivery: str,
    retry: RetryPolicy | None,
    durable: bool,
    has_spool: bool,
) -> Plan:
    """How ``listener`` (at ``path`` in the config) delivers: its own ``delivery``, ``retry``,
    ``durable`` and ``priority`` over the app's. Durable delivery needs background delivery and
    a spool: a ConfigError otherwise, at the listener's ``durable`` or the app's."""
    background = (listener.delivery or delivery) == "background"
    policy = listener.retry or retry or (DEFAULT_BACKGROUND if background else DEFAULT_SYNC)
    is_durable = durable if listener.durable is None else listener.durable
    if is_durable and not (background and has_spool):
        where = "durable" if listener.durable is None else f"{path}.durable"
        raise ConfigError("durable delivery needs `delivery: background` and a `spool`", where)
    return Plan(background, policy, bool(is_durable), listener.priority)


def config_schema() -> dict[str, Any]:
    """The whole configuration's JSON Schema, with one branch per kind that can be imported."""
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
