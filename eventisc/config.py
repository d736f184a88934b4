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
import re
from collections.abc import Collection, Mapping
from typing import IO, TYPE_CHECKING, Any, Union

from .cloudevents import SOURCE_SCHEMA
from .environ import expand
from .errors import ConfigError
from .listeners.base import BUILTIN_KINDS, LISTENER_PROPERTIES, Listener, listener_schema
from .schema import validate
from .settings import (
    CELERY_DELIVERY_SCHEMA,
    DEFAULT_BACKGROUND,
    DEFAULT_SYNC,
    DELIVERY_MODES,
    DISPATCHER_SCHEMA,
    OUTBOX_SCHEMA,
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
    "in_file_order",
    "env_flag",
    "open_spool",
    "option_table",
    "option_tables",
    "options_markdown",
    "read_config",
    "resolve_plan",
    "validate_config",
    "with_celery_app",
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
            "default": "",
            "description": "Prepended to every triggered name: with `myapp.`, "
            '`trigger("user_created")` fires `myapp.user_created`. Listeners match the full '
            "name. When the config sets none, the default app and the command line use "
            "`EVENTISC_NAME_PREFIX`.",
        },
        "listeners": {
            "type": ["array", "null"],
            "default": [],
            "description": "The listeners, each checked against its kind's options; they are "
            "notified in this order.",
        },
        "raise_errors": {
            "type": "boolean",
            "default": False,
            "description": "After all listeners ran, `trigger` raises one `TriggerError` "
            "listing every failure (by default failures are logged and not counted).",
        },
        "dry_run": {
            "type": "boolean",
            "description": "Render and log what would be sent, never deliver. Default: "
            "`EVENTISC_DRYRUN` (the environment variable, read when the app is created).",
        },
        "heartbeat": {
            **_POSITIVE_SECONDS,
            "description": "Seconds: start a thread that keeps pooled RabbitMQ connections "
            "alive, beating this often. Unset: no thread.",
        },
        "delivery": {
            "enum": list(DELIVERY_MODES),
            "default": "sync",
            "description": "`sync`: deliver inside `trigger`; `background`: render, queue and "
            "return, worker threads deliver; `outbox`: render and write a row to the `outbox` "
            "table (in the caller's transaction with `connection=`), relay processes deliver; "
            "`celery`: render and send a task to the `celery_delivery` queue, Celery workers "
            "deliver.",
        },
        "retry": RETRY_SCHEMA,
        "dispatcher": DISPATCHER_SCHEMA,
        "spool": {
            "type": ["object", "string"],
            "additionalProperties": False,
            "required": ["path"],
            "properties": {
                "path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The SQLite file, created with its directories if needed; "
                    "on a local disk.",
                }
            },
            "description": "`{path: FILE}` (or the path alone): where failed, refused and "
            "durable notifications are kept. Unset: nothing is kept, and what is lost is "
            "logged at ERROR.",
        },
        "durable": {
            "type": "boolean",
            "default": False,
            "description": "Background delivery: write each notification to the spool before "
            "`trigger` returns, remove it once delivered.",
        },
        "report_interval": {
            **_POSITIVE_SECONDS,
            "description": "Seconds: log a one-line summary of `stats()` at INFO this often. "
            "Unset: no summary.",
        },
        "outbox": OUTBOX_SCHEMA,
        "celery_delivery": CELERY_DELIVERY_SCHEMA,
        "json_default": {
            "type": "string",
            "description": 'A function, `"package.module:function"`, imported when the config '
            "is loaded and called for each object a JSON body or task argument holds that JSON "
            "cannot (like the `default` of `json.dumps`), before the built-in conversions "
            "(datetimes, Decimals, UUIDs, sets, dataclasses, `__json__()`, `to_dict()`; "
            "[Objects in JSON](templates.md#objects-in-json-built-in-conversions-and-json_default)"
            "). Unset: the built-in conversions only.",
        },
        "source": SOURCE_SCHEMA,
        "recover": {
            "type": "boolean",
            "default": True,
            "description": "Background delivery: at start, deliver what earlier processes "
            "left pending in the spool.",
        },
        "celery_app": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": "Your Celery app, as `module:attribute` (`proj.celery:app`): the "
            "`celery_app` of every celery listener that sets neither its own nor a "
            "`broker_url`. The command line's `--celery-app` replaces it. Unset: such "
            "listeners use `celery.current_app` ([Which Celery app](celery.md#which-celery-app)).",
        },
    },
    "additionalProperties": False,
}

ConfigSource = Union[str, "os.PathLike[str]", IO[str], IO[bytes], Mapping[str, Any]]


def read_config(source: ConfigSource) -> tuple[dict[str, Any], str | None]:
    """Read a config from a path, a file object or a mapping, ``${VAR}`` resolved
    (:mod:`eventisc.environ`).

    Paths ending in ``.yaml``/``.yml`` are YAML, other paths JSON (as in event-isc); a file
    object is read as JSON, else as YAML. Returns the mapping and a name for messages.
    """
    config, label = _read(source)
    try:
        return expand(config), label
    except ConfigError as exc:
        raise ConfigError(exc.message, exc.path, label) from None


def _read(source: ConfigSource) -> tuple[dict[str, Any], str | None]:
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
        where = "" if os.path.isabs(path) else f" (looked for in {os.getcwd()})"
        raise ConfigError(f"config file not found{where}", source=path) from None
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


def validate_config(config: Mapping[str, Any], config_source: str | None = None) -> None:
    """Check the top-level keys (listeners are checked one by one when they are built);
    errors name the file ``config_source``."""
    validate(config, CONFIG_SCHEMA, "", "configs", config_source)


def in_file_order(errors: list[ConfigError], config: Mapping[str, Any]) -> list[ConfigError]:
    """``errors`` in the order of their top-level keys in ``config`` (the file's order); the
    errors under one key keep their order (errors without a path come first)."""
    keys = {str(key): index for index, key in enumerate(config)}

    def position(error: ConfigError) -> int:
        top = re.match(r"[A-Za-z_][A-Za-z0-9_]*", error.path or "")
        return keys.get(top.group(0), len(keys)) if top else -1

    return sorted(errors, key=position)


def with_celery_app(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without its top-level ``celery_app``, which becomes the ``celery_app`` of
    each celery listener mapping that names neither its own nor a ``broker_url``."""
    options = dict(config)
    app = options.pop("celery_app", None)
    listeners = options.get("listeners")
    if app is not None and isinstance(listeners, (list, tuple)):
        options["listeners"] = [
            {**item, "celery_app": app}
            if isinstance(item, Mapping)
            and item.get("kind") == "celery"
            and item.get("celery_app") is None
            and item.get("broker_url") is None
            else item
            for item in listeners
        ]
    return options


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
    has_outbox: bool = False,
    has_celery: bool = False,
) -> Plan:
    """How ``listener`` (at ``path`` in the config) delivers: its own ``delivery``, ``retry``,
    ``durable`` and ``priority`` over the app's. Durable delivery needs background delivery and
    a spool, outbox delivery an ``outbox``, an ordering key outbox delivery: a ConfigError
    otherwise, at the listener's option or the app's."""
    mode = listener.delivery or delivery
    where = f"{path}.delivery" if listener.delivery else "delivery"
    if mode == "outbox" and not has_outbox:
        raise ConfigError("`delivery: outbox` needs an `outbox` (its PostgreSQL url)", where)
    if mode == "celery" and not has_celery:
        raise ConfigError("`delivery: celery` needs a `celery_delivery` (app or broker_url)", where)
    if listener.ordering_key is not None and mode != "outbox":
        raise ConfigError(
            "an ordering key needs `delivery: outbox` (relays keep the order)",
            f"{path}.ordering_key",
        )
    background = mode == "background"
    policy = listener.retry or retry or (DEFAULT_SYNC if mode == "sync" else DEFAULT_BACKGROUND)
    is_durable = durable if listener.durable is None else listener.durable
    if mode == "outbox" and listener.durable is None:
        is_durable = False  # the outbox table is durable itself
    if is_durable and not (background and has_spool):
        where = "durable" if listener.durable is None else f"{path}.durable"
        raise ConfigError("durable delivery needs `delivery: background` and a `spool`", where)
    return Plan(
        background, policy, bool(is_durable), listener.priority, mode == "outbox", mode == "celery"
    )


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


# -- option tables (the manual in docs/, ``eventisc schema --markdown``) -------------------------

#: The head of every option table.
TABLE_HEAD = "| option | default | meaning |\n|---|---|---|\n"
#: How a description states a default that is not a plain value: its last sentence.
DEFAULT_PHRASE = "Default: "


def option_table(
    properties: Mapping[str, Any],
    *,
    required: Collection[str] = (),
    collapse: Collection[str] = (),
) -> str:
    """A Markdown table (option | default | meaning) of a JSON Schema's ``properties``.

    The default is the ``default`` keyword when there is one, else the last sentence of the
    description when it starts with ``Default:`` (for defaults that are not plain values),
    else ``required`` for a name in ``required``, else a dash. A nested object's options that
    the schema describes get rows of their own (``queue_kwargs.queue``), unless its dotted
    name is in ``collapse``; options listed once already (an alias sharing them) are not
    listed again.
    """
    rows: list[str] = []
    _add_rows(rows, properties, required, collapse, "", set())
    return TABLE_HEAD + "".join(rows)


def _add_rows(
    rows: list[str],
    properties: Mapping[str, Any],
    required: Collection[str],
    collapse: Collection[str],
    prefix: str,
    seen: set[int],
) -> None:
    for key, schema in properties.items():
        name = prefix + key
        meaning, phrase = _split_default(schema.get("description", ""))
        default = _default_cell(schema, phrase, key in required)
        rows.append(f"| `{name}` | {default} | {_cell(meaning)} |\n")
        nested = schema.get("properties") or {}
        described = {k: v for k, v in nested.items() if "description" in v}
        if described and name not in collapse and id(nested) not in seen:
            seen.add(id(nested))
            _add_rows(rows, described, schema.get("required", ()), collapse, f"{name}.", seen)


def _split_default(description: str) -> tuple[str, str]:
    """``"Seconds. Default: 3 × the read timeout."`` -> ``("Seconds.", "3 × the read timeout")``."""
    at = description.rfind(DEFAULT_PHRASE)
    if at < 0 or (at > 0 and not description[at - 1].isspace()):
        return description, ""
    return description[:at].rstrip(), description[at + len(DEFAULT_PHRASE) :].rstrip(".")


def _default_cell(schema: Mapping[str, Any], phrase: str, required: bool) -> str:
    if "default" in schema:
        return f"`{_plain(schema['default'])}`"
    if phrase:
        return _cell(phrase)
    return "required" if required else "—"


def _plain(value: Any) -> str:
    """A default as a config file writes it (``10``, ``true``, ``json``, ``["2xx"]``)."""
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


#: The option tables, by the name the manual's markers use: title, properties, required
#: names, nested options not listed (they have tables of their own). The built-in kinds'
#: tables are added by :func:`option_tables`.
_TABLES: dict[str, tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = {
    "config": (
        "Top-level keys",
        CONFIG_SCHEMA["properties"],
        (),
        ("retry", "dispatcher", "outbox", "celery_delivery"),
    ),
    "listener": ("Listener keys (every kind)", LISTENER_PROPERTIES, ("kind",), ("retry",)),
    "retry": ("`retry`", RETRY_SCHEMA["properties"], (), ()),
    "dispatcher": ("`dispatcher`", DISPATCHER_SCHEMA["properties"], (), ()),
    "outbox": ("`outbox`", OUTBOX_SCHEMA["properties"], ("url",), ()),
    "celery_delivery": ("`celery_delivery`", CELERY_DELIVERY_SCHEMA["properties"], (), ()),
}


def option_tables() -> dict[str, tuple[str, str]]:
    """Every option table: name -> (title, Markdown table). The names are ``config``,
    ``listener``, ``retry``, ``dispatcher``, ``outbox`` and each built-in kind whose driver is
    installed (``http``, ``celery``, ``rabbit``); the tables come from the JSON Schemas'
    descriptions."""
    tables = {
        name: (title, option_table(props, required=required, collapse=collapse))
        for name, (title, props, required, collapse) in _TABLES.items()
    }
    for kind in BUILTIN_KINDS:
        try:
            schema = Listener.registry.get(kind).schema or {}
        except ConfigError:
            continue  # its driver is not installed
        table = option_table(schema.get("properties", {}), required=schema.get("required", ()))
        tables[kind] = (f"`kind: {kind}`", table)
    return tables


def options_markdown() -> str:
    """All the option tables as one Markdown document (``eventisc schema --markdown``)."""
    parts = ["# eventisc configuration options\n"]
    for title, table in option_tables().values():
        parts.append(f"\n## {title}\n\n{table}")
    return "".join(parts)
