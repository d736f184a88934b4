"""The ``rabbit`` kind's options: their JSON Schema (:data:`RABBIT_SCHEMA`), the checks run on
them at load (declarations, publish_kwargs, message properties), and the checks of the rendered
exchange, routing key and properties per event."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...cloudevents import CLOUDEVENTS_PROPERTIES
from ...encoding import check_text, find_problem
from ...errors import ConfigError, TemplateError

__all__ = [
    "DECLARE_KEYS",
    "DEFAULT_PROPERTIES",
    "RABBIT_SCHEMA",
    "PROPERTY_TYPES",
    "check_properties",
    "check_property_names",
    "check_publish_kwargs",
    "check_target",
    "declarations",
]

#: The message properties ``properties`` may set, and the types each accepts.
PROPERTY_TYPES: dict[str, type | tuple[type, ...]] = {
    "content_type": str, "content_encoding": str, "headers": dict, "delivery_mode": int,
    "priority": int, "correlation_id": str, "reply_to": str, "expiration": (str, int),
    "message_id": str, "timestamp": (int, datetime), "type": str, "user_id": str,
    "app_id": str, "cluster_id": str,
}  # fmt: skip

#: Properties every message gets unless ``properties`` overrides them.
DEFAULT_PROPERTIES: dict[str, Any] = {"content_type": "application/json", "delivery_mode": 2}

#: What ``queue_kwargs`` may declare, and the arguments each takes.
DECLARE_KEYS = {
    "exchange": ("exchange", "exchange_type", "passive", "durable", "auto_delete", "internal",
                 "arguments"),
    "queue": ("queue", "passive", "durable", "exclusive", "auto_delete", "arguments"),
    "bind": ("routing_key", "arguments"),
}  # fmt: skip


def declarations(
    queue_kwargs: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """Check ``queue_kwargs``; return the exchange, queue and bind arguments (or None)."""
    unknown = sorted(set(queue_kwargs) - set(DECLARE_KEYS))
    if unknown:
        raise ConfigError(f"unknown keys {unknown}: use queue, exchange, bind", "queue_kwargs")
    found: list[dict[str, Any] | None] = []
    for part, allowed in DECLARE_KEYS.items():
        value = queue_kwargs.get(part)
        path = f"queue_kwargs.{part}"
        if value is None:
            found.append(None)
            continue
        if not isinstance(value, Mapping):
            raise ConfigError("must be a mapping of declare arguments", path)
        value = dict(value)
        if part == "exchange" and "type" in value:  # the pika 0.x spelling
            value["exchange_type"] = value.pop("type")
        bad = sorted(set(value) - set(allowed))
        if bad:
            raise ConfigError(f"unknown keys {bad}: use {', '.join(allowed)}", path)
        if part != "bind" and not (isinstance(value.get(part), str) and value[part]):
            raise ConfigError(f"give the {part} a name: `{part}: <name>`", path)
        found.append(value)
    exchange, queue, bind = found
    if bind is not None and (exchange is None or queue is None):
        raise ConfigError("a binding needs both a queue and an exchange", "queue_kwargs.bind")
    return exchange, queue, bind


#: What ``publish_kwargs`` may hold.
PUBLISH_KEYS = ("exchange", "routing_key", "mandatory")


def check_publish_kwargs(
    publish: dict[str, Any], mandatory: bool, confirm: bool, queue: Mapping[str, Any] | None
) -> tuple[dict[str, Any], bool]:
    """Check ``publish_kwargs``; return them with the default exchange and routing key filled
    in (the declared ``queue``'s name), and whether messages are mandatory (``mandatory``
    unless publish_kwargs says). Raises :class:`ConfigError`."""
    unknown = sorted(set(publish) - set(PUBLISH_KEYS))
    if unknown:
        hint = " (the body is the `body` option)" if "body" in unknown else ""
        hint += " (use the `properties` option)" if "properties" in unknown else ""
        raise ConfigError(
            f"unknown keys {unknown}: use {', '.join(PUBLISH_KEYS)}{hint}", "publish_kwargs"
        )
    mandatory = bool(publish.pop("mandatory", mandatory))
    if mandatory and not confirm:
        raise ConfigError(
            "mandatory needs confirm: true (without publisher confirms an unroutable "
            "message is returned after basic_publish has already succeeded)",
            "mandatory",
        )
    publish.setdefault("exchange", "")
    if "routing_key" not in publish:
        if queue is None and not publish["exchange"]:
            raise ConfigError(
                "give publish_kwargs.routing_key, or declare a queue in queue_kwargs.queue "
                "(its name is the default routing key)",
                "publish_kwargs",
            )
        publish["routing_key"] = queue["queue"] if queue else ""
    return publish, mandatory


def check_property_names(properties: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` when ``properties`` names a property AMQP does not have."""
    bad = sorted(set(properties) - set(PROPERTY_TYPES))
    if bad:
        known = ", ".join(PROPERTY_TYPES)
        raise ConfigError(f"unknown message properties {bad}; known: {known}", "properties")


def check_target(rendered: Mapping[str, Any]) -> tuple[str, str]:
    """The rendered exchange and routing key; :class:`TemplateError` unless both are AMQP
    short strings."""
    exchange, routing_key = rendered["exchange"], rendered["routing_key"]
    for what, value in (("exchange", exchange), ("routing_key", routing_key)):
        # AMQP short strings: at most 255 bytes (63 characters always fit in UTF-8).
        if not isinstance(value, str) or (len(value) > 63 and len(value.encode()) > 255):
            raise TemplateError(
                f"publish_kwargs.{what} must render to a string of at most 255 bytes, "
                f"not {value!r:.80}"
            )
        check_text(value, f"publish_kwargs.{what}")
    return exchange, routing_key


def check_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """Check rendered message properties; convert int expirations and datetime timestamps."""
    out = dict(props)
    for key, value in props.items():
        if value is None:
            continue
        expected = PROPERTY_TYPES[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            types = expected if isinstance(expected, tuple) else (expected,)
            names = " or ".join(t.__name__ for t in types)
            raise TemplateError(f"message property {key} must be {names}, not {value!r:.80}")
        if key == "expiration" and isinstance(value, int):
            out[key] = str(value)  # AMQP wants milliseconds as a string
        elif key == "timestamp" and isinstance(value, datetime):
            out[key] = int(value.timestamp())
        elif key == "delivery_mode" and value not in (1, 2):
            raise TemplateError(f"message property delivery_mode must be 1 or 2, not {value!r}")
    problem = find_problem(out, strict=False, text=True)
    if problem is not None:  # pika would fail to encode it when publishing
        raise TemplateError(f"message properties: {problem}")
    return out


def _option(description: str, type: Any = None, **schema: Any) -> dict[str, Any]:
    return {**({"type": type} if type else {}), **schema, "description": description}


_SECONDS = {"type": ["number", "null"], "exclusiveMinimum": 0}
_DECLARE_METHODS = {"exchange": "exchange_declare", "queue": "queue_declare", "bind": "queue_bind"}
_DECLARE_NOTES = {
    "exchange": "; `exchange` (the name) is required, `exchange_type` defaults to `direct` "
    "(pika 0.x's `type` is accepted). With a queue declared too, the queue is bound to this "
    "exchange.",
    "queue": "; `queue` (the name) is required.",
    "bind": "; it needs both a queue and an exchange. Default: the queue is bound with its own "
    "name as the routing key.",
}


#: JSON Schema of the rabbit kind's own options.
RABBIT_SCHEMA: dict[str, Any] = {
    "properties": {
        "url": _option(
            "`amqp://` or `amqps://` URL with a host: "
            "`amqp://user:password@host:5672/%2F?heartbeat=60`. The path is the virtual host, "
            "one segment (`/%2F` is the default virtual host `/`). Its query options are "
            "honoured as by `pika.URLParameters` (`heartbeat`, `connection_attempts`, "
            "`socket_timeout`, `stack_timeout`, `blocked_connection_timeout`, `ssl_options`, "
            "...). The whole URL is checked when the config is loaded.", "string", minLength=1,
        ),
        "queue_kwargs": _option(
            "What each new connection declares, once: `queue`, `exchange`, `bind` (below). "
            "Templates can read it as `queue_kwargs`.",
            "object",
            additionalProperties=False,
            properties={
                key: {
                    "type": "object",
                    **({"required": [key]} if key != "bind" else {}),
                    "description": f"`{_DECLARE_METHODS[key]}` arguments: "
                    + ", ".join(f"`{k}`" for k in DECLARE_KEYS[key]) + _DECLARE_NOTES[key],
                }
                for key in DECLARE_KEYS
            },
        ),
        "publish_kwargs": _option(
            "Templated `exchange` and `routing_key` (their templates may also use "
            "`queue_kwargs`), and `mandatory`. Without a declared queue, give a `routing_key` "
            "or a non-default `exchange`. Declaring an exchange does not change the default: "
            "publish to it by naming it here. Default: the default exchange `\"\"` and the "
            "declared queue's name as the routing key.", "object",
        ),
        "body": _option(
            "Template of the body: a rendered string or bytes is sent as it is, anything else "
            "is encoded as JSON. Default: the event data as JSON."
        ),
        "properties": _option(
            "Templated message properties, merged over the default: `content_type`, "
            "`content_encoding`, `headers`, `delivery_mode` (1, or 2: persistent), `priority`, "
            "`correlation_id`, `reply_to`, `expiration` (an int of milliseconds is converted), "
            "`message_id` (without it, each message's is its notification id), `timestamp` "
            "(an int or a datetime), `type`, `user_id`, `app_id`, `cluster_id`.", "object",
            default=DEFAULT_PROPERTIES,
        ),
        "confirm": _option(
            "Wait for the broker's publisher confirm: a delivery that succeeds means the "
            "broker has the message.", "boolean", default=True,
        ),
        "pipeline": _option(
            "In background delivery with `confirm: true`, publish through one pipelined "
            "connection per listener and process, up to `max_in_flight` messages awaiting "
            "their confirm, instead of the pool. Sync delivery and `eventisc spool replay` "
            "always use the pool.", "boolean", default=True,
        ),
        "max_in_flight": _option(
            "Pipelined: messages published and not yet confirmed at once. Up to twice as many "
            "more wait in memory; beyond that a delivery waits up to `timeout` for room, then "
            "fails with `DeliveryTimeout`.", "integer", minimum=1, default=1000,
        ),
        "mandatory": _option(
            "A message no queue receives fails as `Rejected` (needs `confirm: true`).",
            "boolean", default=False,
        ),
        "timeout": _option(
            "Seconds (a finite number above 0) allowed to get a pooled connection, to connect "
            "(TCP, TLS and AMQP handshake), to get a confirm, and to stay blocked by a broker "
            "memory or disk alarm.", "number", exclusiveMinimum=0, default=10,
        ),
        "max_size": _option(
            "Idle connections kept in the pool.", "integer", minimum=1, default=10,
        ),
        "max_overflow": _option(
            "Extra connections opened under load. At most `max_size + max_overflow` exist at "
            "once; beyond that a delivery waits up to `timeout`, then fails with "
            "`DeliveryTimeout`.", "integer", minimum=0, default=10,
        ),
        "recycle": _option(
            "Close connections older than this many seconds. Unset: never.", **_SECONDS,
        ),
        "stale": _option(
            "Do not reuse connections idle longer than this many seconds; set it below the "
            "heartbeat timeout if you run no heartbeat. Unset: never.", **_SECONDS,
        ),
        **CLOUDEVENTS_PROPERTIES,
    },
    "required": ["url"],
}  # fmt: skip
