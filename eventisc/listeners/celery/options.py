"""The ``celery`` kind's options: their JSON Schema (:data:`CELERY_SCHEMA`), the checks run on
them at load, and the check of the rendered task arguments per event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError, TemplateError
from ...masking import mask_url

__all__ = [
    "BROKER_SCHEMES",
    "CELERY_APP_SCHEMA",
    "check_broker_url",
    "CELERY_SCHEMA",
    "CONTROLLED_OPTIONS",
    "DEFAULT_TIMEOUT",
    "as_kwargs",
    "send_task_options",
]

#: Default seconds one publish may take, retries included.
DEFAULT_TIMEOUT = 10.0

#: The kwargs the listener itself passes to ``send_task``, with what to use instead.
CONTROLLED_OPTIONS = {
    "name": "set the listener's `task_name`",
    "args": "set the listener's `task_args`",
    "kwargs": "set the listener's `task_kwargs`",
    "queue": "set the listener's `queue`",
    "retry": "eventisc bounds each publish by the listener's `timeout`",
    "retry_policy": "eventisc bounds each publish by the listener's `timeout`",
    "timeout": "set the listener's `timeout`",
    "confirm_timeout": "set the listener's `timeout`",
    "connection": "set the listener's `broker_url`",
    "producer": "set the listener's `broker_url`",
    "publisher": "set the listener's `broker_url`",
}

_SEND_TASK_KWARGS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "default": {},
    "description": (
        "Extra keyword arguments of Celery's `send_task`, passed as they are (not templated): "
        "`countdown`, `eta`, `expires`, `priority`, `headers`, `serializer`, `exchange`, "
        "`routing_key`, ... The keys the listener sets itself ("
        + ", ".join(f"`{k}`" for k in CONTROLLED_OPTIONS)
        + ") are refused."
    ),
    "properties": {
        "task_id": {
            "type": "string",
            "minLength": 1,
            "description": "The same task id for every task (it is not templated). Default: "
            "the notification id, the same on every retry and spool replay of one "
            "notification.",
        },
        "countdown": {"type": "number", "description": "Seconds to wait before running."},
        "eta": {"type": "string", "description": "ISO 8601 time to run at."},
        "expires": {
            "type": ["number", "string"],
            "description": "Seconds, or an ISO 8601 time, after which the task is dropped.",
        },
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 255,
            "description": "Message priority, 0-255 (the queue must support priorities).",
        },
        "headers": {"type": "object", "description": "Extra message headers."},
        "serializer": {
            "type": "string",
            "description": "`json`, `pickle`, `yaml`, ... Default: the Celery app's "
            "`task_serializer` (`json`).",
        },
        "compression": {
            "type": "string",
            "description": "Compress the message: `zlib`, `bzip2`, ...",
        },
        "exchange": {"type": "string", "description": "Exchange to send to (overrides routing)."},
        "routing_key": {"type": "string", "description": "Routing key (overrides routing)."},
        "ignore_result": {
            "type": "boolean",
            "description": "Do not store the task's result (its return value).",
        },
        "time_limit": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds the worker lets the task run before it kills it.",
        },
        "soft_time_limit": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds after which the task gets a `SoftTimeLimitExceeded`.",
        },
    },
}


#: JSON Schema of a listener's ``celery_app`` (the config's top-level one is its default).
CELERY_APP_SCHEMA: dict[str, Any] = {
    "type": ["string", "null"],
    "minLength": 1,
    "description": (
        "Your Celery app, as `module:attribute` (`proj.celery:app`), imported when the config "
        "is loaded (the current directory and `PYTHONPATH` are searched): tasks go through "
        "it, to its broker, with its settings. Not with `broker_url`. Default: the config's "
        "top-level `celery_app`, else `celery.current_app` (see Which Celery app, below)."
    ),
}

#: JSON Schema of the celery kind's own options.
CELERY_SCHEMA: dict[str, Any] = {
    "properties": {
        "task_name": {
            "type": "string",
            "minLength": 1,
            "description": "The name of the task to send (templated), e.g. "
            '`foo_handle_created` or `"foo_handle_{event_data[kind]}"`.',
        },
        "queue": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": (
                "The queue to send the task to (templated). Default: the Celery app's routing "
                "(`task_routes`, else `task_default_queue`)."
            ),
        },
        "task_args": {
            "type": ["array", "null"],
            "default": [],
            "description": "Positional arguments of the task, each templated; a field alone "
            '(`"{event_data[n]}"`) keeps its type.',
        },
        "task_kwargs": {
            "type": ["object", "string", "null"],
            "description": (
                "Keyword arguments of the task, each value templated. The string "
                '`"**event_data"` passes the event data itself as the keyword arguments; it must '
                "then be a mapping with string keys, or the event fails with a `TemplateError`. "
                'Default: `{event_name: "{event_name}", event_data: "{event_data}"}` when '
                "neither `task_args` nor `task_kwargs` is given, else `{}`."
            ),
        },
        "send_task_kwargs": _SEND_TASK_KWARGS_SCHEMA,
        "send_task_kargs": {
            **_SEND_TASK_KWARGS_SCHEMA,
            "description": "event-isc's spelling of `send_task_kwargs`; giving both is an error.",
        },
        "broker_url": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": (
                "The broker (`amqp://...`, `redis://...`) of a Celery app eventisc keeps for "
                "this listener: one per broker URL and timeout in a process, shared by "
                "listeners, recreated in a child after `fork()`, closed with its last listener; "
                "every wait of a publish is bounded. `CELERY_BROKER_URL` does not override it. "
                "Without it, tasks go through your application's Celery app: `celery_app`, else "
                "the current app looked up at each delivery (as in event-isc). Default: "
                "`celery_app`, else `celery.current_app`."
            ),
        },
        "celery_app": CELERY_APP_SCHEMA,
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULT_TIMEOUT,
            "description": "Seconds one publish may take, reconnection and one retry included.",
        },
    },
    "required": ["task_name"],
}


#: URL schemes of kombu's transports (``kombu.transport.TRANSPORT_ALIASES``; a ``transport+``
#: prefix, as in ``sqla+postgresql://``, names the transport).
BROKER_SCHEMES = frozenset(
    {"amqp", "amqps", "pyamqp", "pyamqps", "librabbitmq", "redis", "rediss", "sentinel",
     "memory", "sqs", "SQS", "slmq", "SLMQ", "qpid", "sqla", "sqlalchemy", "mongodb",
     "zookeeper", "consul", "etcd", "filesystem", "azureservicebus", "azurestoragequeues",
     "gcpubsub", "confluentkafka", "kafka", "pyro", "pgmq"}
)  # fmt: skip


def check_broker_url(url: Any, path: str = "broker_url") -> str:
    """``url`` if kombu can use it: each ``;``-separated URL of a known transport scheme, with
    a valid host and port; else a ConfigError at ``path`` (the password masked)."""
    if not isinstance(url, str):
        raise ConfigError(f"must be a broker URL (a string), not {type(url).__name__}", path)
    for one in url.split(";"):
        problem = _broker_url_problem(one.strip())
        if problem is not None:
            raise ConfigError(f"broker URL {mask_url(one.strip())!r} {problem}", path)
    return url


def _broker_url_problem(url: str) -> str | None:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    transport = scheme.split("+", 1)[0]
    if transport not in BROKER_SCHEMES:
        known = "amqp://, redis://, sqs://, ..."
        return f"does not start with a kombu transport's scheme ({known})"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number of 0-65535
    except ValueError as exc:
        return f"has a bad host or port ({exc})"
    if parts.port == 0:
        return "has port 0: write the broker's port, or leave it out for the default"
    return None


def send_task_options(
    kwargs: Mapping[str, Any] | None, kargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    if kwargs is not None and kargs is not None:
        raise ConfigError(
            "give `send_task_kwargs` or its event-isc spelling `send_task_kargs`, not both",
            "send_task_kargs",
        )
    option = "send_task_kargs" if kargs is not None else "send_task_kwargs"
    given = kwargs if kwargs is not None else kargs
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"must be a mapping, not {type(given).__name__}", option)
    for key in given:
        if key in CONTROLLED_OPTIONS:
            raise ConfigError(
                f"`{key}` is set by the listener: {CONTROLLED_OPTIONS[key]}", f"{option}.{key}"
            )
    task_id = given.get("task_id")
    if "task_id" in given and not (isinstance(task_id, str) and task_id):
        raise ConfigError(
            f"a task id is text, not {task_id!r} (leave it out: each task's id is then its "
            "notification id)",
            f"{option}.task_id",
        )
    return dict(given)


def as_kwargs(value: Any, template: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        got = type(value).__name__ if not isinstance(value, Mapping) else "non-string keys"
        raise TemplateError(
            f"{what} must be a mapping with string keys to be the task's keyword "
            f"arguments, got {got}",
            template=str(template),
        )
    return dict(value)
