"""OpenTelemetry traces: a span per trigger, a child span per delivery attempt, and the W3C
trace context carried to the receiving service.

Nothing here imports OpenTelemetry until a tracer provider is configured, and until one may be,
a trigger checks nothing at all. :data:`armed` turns true when OpenTelemetry's
``set_tracer_provider`` runs (or when ``opentelemetry.trace`` is found with a provider already
set), and the app then swaps in a trigger that checks (:func:`when_armed`). To see that call,
:func:`watch` wraps ``opentelemetry.trace._set_tracer_provider``, through which every provider
is set (``set_tracer_provider``, and ``get_tracer_provider`` loading the one
``OTEL_PYTHON_TRACER_PROVIDER`` names), as soon as the module is loaded: at once if it is, else
from an import hook on ``sys.meta_path`` that looks at nothing but the names of the modules
imported, and leaves once it has seen ``opentelemetry.trace``. So a provider set after
``eventisc`` was imported, or after the app was built, is seen by the next trigger.

Once armed, :func:`configured` makes the exact check (``opentelemetry.trace._TRACER_PROVIDER``,
a dictionary lookup and an attribute): a test suite that resets OpenTelemetry's globals (sets
``_TRACER_PROVIDER`` back to None, as OpenTelemetry's own tests do) gets untraced triggers, and
traced ones again when it sets a provider, through ``set_tracer_provider`` or by assigning
``_TRACER_PROVIDER``. A provider only ever assigned to ``_TRACER_PROVIDER`` directly, never set
through ``set_tracer_provider`` in the process, is not seen, and neither is one set after
``opentelemetry.trace`` was reloaded (``importlib.reload``) with no provider set before.

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
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._version import __version__
from .secret_values import redact

if TYPE_CHECKING:
    from .delivery.outcomes import Failure, Sent
    from .listeners.base import Listener
    from .notification import Notification
    from .report import Delivery

__all__ = [
    "OTEL_TRACE",
    "amqp_properties",
    "armed",
    "attributes",
    "configured",
    "fire",
    "headers",
    "send",
    "send_async",
    "step",
    "url_full",
    "watch",
    "when_armed",
]

#: The module whose ``_TRACER_PROVIDER`` says whether a tracer provider is configured.
OTEL_TRACE = "opentelemetry.trace"
#: The instrumentation scope of eventisc's spans.
SCOPE = "eventisc"
#: What the semantic conventions show in place of a secret in ``url.full``.
REDACTED = "REDACTED"
#: Query parameters (any case) whose values ``url.full`` hides: the semantic conventions'
#: (signed URLs) and the usual names of credentials.
SECRET_PARAMETERS = frozenset(
    {
        "awsaccesskeyid",
        "signature",
        "sig",
        "x-goog-signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "auth",
    }
)

_modules = sys.modules
_EMPTY: dict[str, str] = {}


#: True once a tracer provider may be set (see the module's documentation): the app then
#: swaps in its checking trigger (:func:`when_armed`); :func:`configured` says whether one is.
armed = False


def configured() -> bool:
    """True when OpenTelemetry is loaded and a global tracer provider is set (cheap: no import;
    a flag's read while no provider was ever set)."""
    if not armed:
        return False
    api = _modules.get(OTEL_TRACE)
    return api is not None and api._TRACER_PROVIDER is not None


def watch() -> None:
    """Arm :data:`armed` when a tracer provider is set: hook ``opentelemetry.trace`` now if it
    is loaded, else when it is imported. Called when this module is imported, and again when
    an app starts (in case another import hook loaded the module without this one seeing it)."""
    api = _modules.get(OTEL_TRACE)
    if api is not None:
        _hook(api)
    elif not any(isinstance(finder, _Watcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())


_on_arm: list[Callable[[], None]] = []


def when_armed(callback: Callable[[], None]) -> None:
    """Call ``callback()`` when :data:`armed` turns true (at once if it is): the app swaps in
    its traced trigger then, so that until a provider may be set a trigger checks nothing."""
    if armed:
        callback()
    else:
        _on_arm.append(callback)


def _arm() -> None:
    global armed
    if armed:
        return
    armed = True
    for callback in _on_arm:
        callback()


def _hook(api: Any) -> None:
    """Wrap ``api._set_tracer_provider`` to arm first; arm at once when a provider is set
    already, or when this OpenTelemetry has no such function (then every trigger checks)."""
    original = getattr(api, "_set_tracer_provider", None)
    if not callable(original):
        _arm()
        return
    if not getattr(original, "eventisc_armed", False):

        def _set_tracer_provider(*args: Any, **kwargs: Any) -> Any:
            _arm()  # before: a trigger never misses a provider that is set
            return original(*args, **kwargs)

        _set_tracer_provider.eventisc_armed = True  # type: ignore[attr-defined]
        _set_tracer_provider.__wrapped__ = original  # type: ignore[attr-defined]
        api._set_tracer_provider = _set_tracer_provider
    if getattr(api, "_TRACER_PROVIDER", None) is not None:
        _arm()


class _Watcher:
    """A ``sys.meta_path`` finder that finds nothing itself: when ``opentelemetry.trace`` is
    imported, it has the real finder's loader run :func:`_hook` after the module's code, then
    leaves ``sys.meta_path``."""

    busy = False  # finding: a finder that asks sys.meta_path again gets no answer here

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != OTEL_TRACE or self.busy:
            return None
        self.busy = True
        try:
            spec = self._find(name, path, target)
        finally:
            self.busy = False
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _HookingLoader(spec.loader, self)
        return spec

    def _find(self, name: str, path: Any, target: Any) -> Any:
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(name, path, target)
                if spec is not None:
                    return spec
        return None


class _HookingLoader:
    """The real loader of ``opentelemetry.trace``, hooking the module once it ran (and then
    putting the real loader back where the module records it)."""

    _lock = threading.Lock()

    def __init__(self, loader: Any, watcher: _Watcher):
        self.loader = loader
        self.watcher = watcher

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        loader = self.loader
        module.__loader__ = loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        loader.exec_module(module)
        with self._lock:
            _hook(module)
            if self.watcher in sys.meta_path:
                sys.meta_path.remove(self.watcher)


#: The provider the tracer below came from, and that tracer (made once per provider).
_made: tuple[Any, Any] = (None, None)


def _tracer(trace: Any) -> Any:
    """eventisc's tracer from the tracer provider set now: made again only when the provider
    changed (a tracer from the SDK's provider is an object of its own each time)."""
    global _made
    provider = trace.get_tracer_provider()
    made_for, tracer = _made
    if made_for is not provider:
        tracer = provider.get_tracer(SCOPE, __version__)
        _made = (provider, tracer)
    return tracer


def fire(run: Callable[..., int], name: str, data: Any, sink: Any) -> int:
    """``run(name, data, sink, trace)`` inside the span ``eventisc trigger <name>``, ``trace``
    being the span's context for the notifications it renders. Returns what ``run`` returns;
    what it raises is recorded on the span and raised."""
    from opentelemetry import propagate, trace

    tracer = _tracer(trace)
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
        _end(span, token, notification, _outcome(detail), detail)
    return result


def send_async(
    listener: Listener, delivery: Delivery, done: Callable[[Any, BaseException | None], None]
) -> None:
    """``listener.deliver_async(notification, done)`` (one attempt of ``delivery``) in its
    span when a tracer provider is configured: the span is current while the message is handed
    over (its context goes into the message), and ends when the listener answers (``done``:
    the broker's confirm, or the failure), on whichever thread that is. Raises what
    ``deliver_async`` raises, the span then ended as failed."""
    notification = delivery.notification
    assert notification is not None
    if not configured():
        listener.deliver_async(notification, done)
        return
    span, token = _start(notification, delivery.attempts)
    ended = threading.Lock()  # the span ends once: on the answer, or on an error raised

    def answered(detail: Any, error: BaseException | None) -> None:
        if ended.acquire(blocking=False):
            _close(span, notification, "failed" if error is not None else _outcome(detail),
                   detail, error)  # fmt: skip
        done(detail, error)

    try:
        listener.deliver_async(notification, answered)
    except BaseException as exc:
        if ended.acquire(blocking=False):
            _close(span, notification, "failed", None, exc)
        raise
    finally:
        _detach(token)


def _outcome(detail: Any) -> str:
    return "declined" if detail is False else "delivered"


def _start(notification: Notification, number: int) -> tuple[Any, Any]:
    """Start the attempt's span under the trigger's context and make it current."""
    from opentelemetry import context, propagate, trace

    parent = propagate.extract(notification.trace) if notification.trace else None
    name, kind, attrs = attributes(notification)
    attrs["eventisc.listener"] = notification.listener
    attrs["eventisc.attempt"] = number
    tracer = _tracer(trace)
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
    _detach(token)
    _close(span, notification, outcome, detail, error)


def _detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


def _close(
    span: Any,
    notification: Notification,
    outcome: str,
    detail: Any,
    error: BaseException | None = None,
) -> None:
    """Describe the attempt's outcome on ``span`` and end it."""
    from opentelemetry import trace

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


def url_full(url: str) -> str:
    """``url`` as the ``url.full`` attribute shows it: credentials in it (``user:password@``)
    become ``REDACTED:REDACTED@`` and the values of :data:`SECRET_PARAMETERS` ``REDACTED``, as
    the semantic conventions ask; the fragment is left out, and every value the config took
    from a secret (:mod:`eventisc.secret_values`) is masked (``***``)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}:{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        query = "&".join(_redacted_parameter(item) for item in query.split("&"))
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def _redacted_parameter(item: str) -> str:
    name, equals, _value = item.partition("=")
    if equals and name.lower() in SECRET_PARAMETERS:
        return f"{name}={REDACTED}"
    return item


def attributes(notification: Notification) -> tuple[str, str, dict[str, Any]]:
    """The span name, the span kind's name and the semantic-convention attributes of an
    attempt at ``notification``, by its kind (no I/O)."""
    payload = notification.payload
    kind = notification.kind
    if kind == "http":
        method = str(payload.get("method") or "POST").upper()
        attrs: dict[str, Any] = {"http.request.method": method}
        url = str(payload.get("url") or "")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:  # not a URL one can send to: the attempt fails, described as is
            return method, "CLIENT", attrs
        if parts.hostname:
            attrs["server.address"] = parts.hostname
            attrs["server.port"] = port or (443 if parts.scheme == "https" else 80)
            attrs["url.full"] = url_full(url)
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


watch()
