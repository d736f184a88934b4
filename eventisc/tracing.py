"""OpenTelemetry traces: a span per trigger, a child span per delivery attempt, and the W3C
trace context carried to the receiving service.

Nothing here imports OpenTelemetry until a tracer provider is configured: :func:`configured`
looks whether ``opentelemetry.trace`` is loaded and has a provider set, which costs a
dictionary lookup, so a provider configured after ``eventisc`` was imported is seen by the next
trigger. Without one, a trigger pays that check and nothing else.

When one is configured, :func:`fire` runs a trigger inside the span ``eventisc trigger
<event name>`` and gives each notification it renders the trigger's context
(``Notification.trace``: the ``traceparent`` and ``tracestate`` the global propagator writes).
The context travels with the notification, through the background workers, the spool and the
outbox, so each attempt (:func:`step` and :func:`send` make one span each: CLIENT for HTTP,
PRODUCER for brokers, named and described by the semantic conventions) is a child of the
trigger that caused it, whichever thread or process makes it. :func:`headers` is what a
listener adds to the request, the AMQP message or the Celery task: the attempt's context, or,
in a process without a provider (an outbox relay), the trigger's as it was stored.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._version import __version__

if TYPE_CHECKING:
    from .delivery.outcomes import Failure, Sent
    from .listeners.base import Listener
    from .notification import Notification
    from .report import Delivery

__all__ = [
    "OTEL_TRACE",
    "amqp_properties",
    "attributes",
    "configured",
    "fire",
    "headers",
    "send",
    "step",
]

#: The module whose ``_TRACER_PROVIDER`` says whether a tracer provider is configured.
OTEL_TRACE = "opentelemetry.trace"
#: The instrumentation scope of eventisc's spans.
SCOPE = "eventisc"

_modules = sys.modules
_EMPTY: dict[str, str] = {}


def configured() -> bool:
    """True when OpenTelemetry is loaded and a global tracer provider is set (cheap: no import)."""
    api = _modules.get(OTEL_TRACE)
    return api is not None and api._TRACER_PROVIDER is not None


def fire(run: Callable[..., int], name: str, data: Any, sink: Any) -> int:
    """``run(name, data, sink, trace)`` inside the span ``eventisc trigger <name>``, ``trace``
    being the span's context for the notifications it renders. Returns what ``run`` returns;
    what it raises is recorded on the span and raised."""
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer(SCOPE, __version__)
    with tracer.start_as_current_span(
        f"eventisc trigger {name}", attributes={"eventisc.event": name}
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        notified = run(name, data, sink, carrier)
        span.set_attribute("eventisc.notified", notified)
        return notified


def headers(notification: Notification) -> dict[str, str]:
    """The trace context headers for an attempt at ``notification`` (``traceparent``,
    ``tracestate``): the current attempt span's, else the stored context of the trigger that
    rendered it; empty when it was not triggered in a trace. Do not change the dict returned."""
    trace = notification.trace
    if trace is None:
        return _EMPTY
    if configured():
        from opentelemetry import propagate

        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            return carrier
    return trace


def amqp_properties(properties: Any, notification: Notification) -> Any:
    """pika ``BasicProperties`` with the :func:`headers` added (a copy: the listener's constant
    properties are shared), or ``properties`` itself when there are none."""
    trace = headers(notification)
    if not trace:
        return properties
    traced = copy.copy(properties)
    traced.headers = {**(properties.headers or {}), **trace}
    return traced


def step(
    send: Callable[[Notification, float, Any], bool | BaseException],
    notification: Notification,
    trace: dict[str, str],
    start: float,
    sink: list[Delivery] | None,
) -> bool | BaseException:
    """A route's send step for a notification of a traced trigger: the notification keeps the
    trigger's context ``trace``; a step that is itself the attempt (the direct one, marked
    ``send.attempt``) runs inside the attempt's span. Returns and raises what ``send`` does."""
    notification.trace = trace
    if not getattr(send, "attempt", False) or not configured():
        return send(notification, start, sink)
    kept: list[Delivery] = sink if sink is not None else []
    before = len(kept)
    span, token = _start(notification, 1)
    try:
        outcome = send(notification, start, kept)
    except BaseException as exc:
        _end(span, token, notification, "failed", None, exc)
        raise
    # The direct step reports its delivery (with the listener's detail) to the sink.
    detail = getattr(kept[before], "detail", None) if len(kept) > before else None
    if isinstance(outcome, BaseException):
        _end(span, token, notification, "failed", None, outcome)
    else:
        _end(span, token, notification, "delivered" if outcome else "declined", detail)
    return outcome


def send(
    attempt: Callable[[Listener, Notification], Sent | Failure],
    listener: Listener,
    delivery: Delivery,
) -> Sent | Failure:
    """``attempt(listener, notification)`` (one attempt of ``delivery``, which never raises)
    inside its span when a tracer provider is configured."""
    notification = delivery.notification
    assert notification is not None
    if not configured():
        return attempt(listener, notification)
    span, token = _start(notification, delivery.attempts)
    result = attempt(listener, notification)
    error = getattr(result, "error", None)
    if error is not None:
        _end(span, token, notification, "failed", None, error)
    else:
        detail = getattr(result, "detail", None)
        outcome = "declined" if detail is False else "delivered"
        _end(span, token, notification, outcome, detail)
    return result


def _start(notification: Notification, number: int) -> tuple[Any, Any]:
    """Start the attempt's span under the trigger's context and make it current."""
    from opentelemetry import context, propagate, trace

    parent = propagate.extract(notification.trace) if notification.trace else None
    name, kind, attrs = attributes(notification)
    attrs["eventisc.listener"] = notification.listener
    attrs["eventisc.attempt"] = number
    tracer = trace.get_tracer(SCOPE, __version__)
    span = tracer.start_span(name, parent, getattr(trace.SpanKind, kind), attrs)
    return span, context.attach(trace.set_span_in_context(span))


def _end(
    span: Any,
    token: Any,
    notification: Notification,
    outcome: str,
    detail: Any,
    error: BaseException | None = None,
) -> None:
    from opentelemetry import context, trace

    context.detach(token)
    span.set_attribute("eventisc.outcome", outcome)
    status = _status(detail, error)
    if status is not None and notification.kind == "http":
        span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.set_attribute("error.type", _error_type(error, status, notification.kind))
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)[:200]))
    span.end()


def _error_type(error: BaseException, status: int | None, kind: str) -> str:
    """``error.type``: an HTTP status as a string, else the error's fully qualified class."""
    if status is not None and kind == "http":
        return str(status)
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _status(detail: Any, error: BaseException | None) -> int | None:
    """The HTTP status code of an attempt: from the error, or from ``"HTTP 200"``."""
    if error is not None:
        status = getattr(error, "status", None)
        return status if isinstance(status, int) else None
    if isinstance(detail, str) and detail.startswith("HTTP "):
        try:
            return int(detail[5:8])
        except ValueError:
            return None
    return None


def attributes(notification: Notification) -> tuple[str, str, dict[str, Any]]:
    """The span name, the span kind's name and the semantic-convention attributes of an
    attempt at ``notification``, by its kind (no I/O)."""
    payload = notification.payload
    kind = notification.kind
    if kind == "http":
        method = str(payload.get("method") or "POST").upper()
        attrs: dict[str, Any] = {"http.request.method": method}
        parts = urlsplit(str(payload.get("url") or ""))
        if parts.hostname:
            attrs["server.address"] = parts.hostname
            attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        return method, "CLIENT", attrs
    if kind == "rabbit":
        exchange = str(payload.get("exchange") or "")
        properties = payload.get("properties") or {}
        attrs = {
            "messaging.system": "rabbitmq",
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
            "messaging.destination.name": exchange,
            "messaging.message.id": properties.get("message_id") or notification.id,
        }
        if payload.get("routing_key"):
            attrs["messaging.rabbitmq.destination.routing_key"] = payload["routing_key"]
        return f"publish {exchange}".rstrip(), "PRODUCER", attrs
    if kind == "celery":
        options = payload.get("options") or {}
        destination = str(payload.get("queue") or options.get("queue") or "celery")
        attrs = {
            "messaging.system": "celery",
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            "messaging.destination.name": destination,
            "messaging.message.id": options.get("task_id") or notification.id,
            "celery.task_name": str(payload.get("task_name")),
        }
        return f"send {destination}", "PRODUCER", attrs
    return f"eventisc deliver {kind}", "INTERNAL", {}
