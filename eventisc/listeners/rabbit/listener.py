"""The ``rabbit`` kind's listener: its options, the message it renders for an event, and the
publishing of that message with pika 1.x.

Connections come from eventisc's own :class:`~eventisc.pool.QueuedPool` (pika-pool's
semantics). Each pooled connection has one channel, in publisher-confirm mode by default, and
declares the configured exchange, queue and binding once, when it connects: an app starts
while RabbitMQ is down, and a connection opened after a broker restart declares again what the
restart dropped. A connection found dead while publishing is discarded and the message is
published once more on a fresh connection before the delivery counts as failed.

Background delivery (:meth:`RabbitListener.deliver_async`) with confirms does not use the pool:
it pipelines messages over one connection, many confirms in flight at once
(:mod:`.publisher`). How a publish is bounded: :mod:`.connection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pika

from ...cloudevents import (
    PAYLOAD_KEY,
    STRUCTURED_TYPE,
    CloudEvents,
    amqp_headers,
    is_json_text,
    is_json_type,
    structured,
)
from ...encoding import check_text
from ...errors import ConfigError, DeliveryError, StaleConnection, TemplateError
from ...notification import Notification, new_id
from ...pool import QueuedPool
from ...settings import count_option, seconds_option
from ...template import compile_template
from ...tracing import amqp_properties
from ..base import Listener
from .connection import PooledConnection, breaks_connection, close_connection, connection_died
from .errors import translate_error
from .options import (
    DEFAULT_PROPERTIES,
    RABBIT_SCHEMA,
    check_properties,
    check_property_names,
    check_publish_kwargs,
    check_target,
    declarations,
)
from .publisher import Done, PipelinedPublisher, call_done
from .url import connection_parameters, shown_url

__all__ = ["RabbitListener"]

#: A pooled connection idle for this many seconds is probed (one non-blocking read) before it
#: is lent again, so one the broker closed meanwhile is replaced instead of failing a publish.
PROBE_AFTER = 1.0
_EVENT_DATA = "the event data (set `body` to choose what to send)"


class RabbitListener(Listener):
    """Publishes a message per event to RabbitMQ (see the module docstring)."""

    kind = "rabbit"
    template_names = ("queue_kwargs",)
    schema = RABBIT_SCHEMA

    def __init__(
        self,
        event_name: Any = None,
        url: str | None = None,
        queue_kwargs: Mapping[str, Any] | None = None,
        publish_kwargs: Mapping[str, Any] | None = None,
        filter: Any = None,
        *,
        body: Any = None,
        properties: Mapping[str, Any] | None = None,
        confirm: bool = True,
        pipeline: bool = True,
        max_in_flight: int = 1000,
        mandatory: bool = False,
        timeout: float = 10.0,
        max_size: int = 10,
        max_overflow: int = 10,
        recycle: float | None = None,
        stale: float | None = None,
        format: str | None = None,
        cloudevents_mode: str | None = None,
        source: str | None = None,
        subject: Any = None,
        **common: Any,
    ):
        super().__init__(event_name, filter, **common)
        self.timeout = seconds_option(timeout, "timeout")
        self._parameters = connection_parameters(url, self.timeout)
        assert isinstance(url, str)  # connection_parameters said so
        self.url = url
        self.confirm = confirm
        self.queue_kwargs: dict[str, Any] = dict(queue_kwargs or {})
        self.target = f"{self._parameters.host}:{self._parameters.port}"
        self._exchange, self._queue, self._bind = declarations(self.queue_kwargs)
        self.publish_kwargs, self.mandatory = check_publish_kwargs(
            dict(publish_kwargs or {}), mandatory, confirm, self._queue
        )
        self._publish = self.template(self.publish_kwargs, "publish_kwargs")
        #: (exchange, routing_key) when they do not depend on the event: rendered once.
        self._target = self._fixed_target(self.publish_kwargs)
        self._body = None if body is None else self.template(body, "body")
        self._set_properties(properties)
        #: The CloudEvents settings (``format: cloudevents``); None: plain messages.
        self.cloudevents: CloudEvents | None = CloudEvents.from_options(
            format, cloudevents_mode, source, subject, self.template
        )
        self._pool: QueuedPool[PooledConnection] = QueuedPool(
            self._connect,
            max_size=count_option(max_size, "max_size", 1),
            max_overflow=count_option(max_overflow, "max_overflow", 0),
            timeout=self.timeout,
            recycle=None if recycle is None else seconds_option(recycle, "recycle"),
            stale=None if stale is None else seconds_option(stale, "stale"),
            is_alive=PooledConnection.probe,
            check_after=PROBE_AFTER,
            invalidates=breaks_connection,
            close=self._close_connection,
            name=f"rabbit {self.target}",
        )
        max_in_flight = count_option(max_in_flight, "max_in_flight", 1)
        self.pipeline = bool(pipeline)
        #: Background delivery's publisher; it connects on first use (see deliver_async).
        self._pipeline = PipelinedPublisher(
            self._parameters,
            self.target,
            timeout=self.timeout,
            declarations=(self._exchange, self._queue, self._bind),
            max_in_flight=max_in_flight,
            listener=self,
        ) if self.pipeline and confirm else None  # fmt: skip

    def _set_properties(self, properties: Mapping[str, Any] | None) -> None:
        """Compile the message properties; check and build constant ones once, now."""
        props = {**DEFAULT_PROPERTIES, **(properties or {})}
        check_property_names(props)
        #: Whether each message's ``message_id`` is its notification id (decided now: a
        #: ``message_id`` of the listener's own, templated or not, is sent instead).
        self._message_ids = "message_id" not in props
        self._properties = self.template(props, "properties")
        self._static_properties: dict[str, Any] | None = None
        self._static_basic_properties: Any = None
        if self._properties.is_constant:
            try:
                self._static_properties = check_properties(props)
            except TemplateError as exc:
                raise ConfigError(exc.message, "properties") from None
            self._static_basic_properties = pika.BasicProperties(**self._static_properties)

    def _fixed_target(self, publish: Mapping[str, Any]) -> tuple[str, str] | None:
        """Render exchange and routing key now if they use nothing but ``queue_kwargs``.

        Without calls (no ``(``) and without the event's names, a template is a fixed lookup
        in the config, so its value cannot change from one event to the next.
        """
        texts = [v for v in publish.values() if isinstance(v, str)]
        if any("(" in text for text in texts):
            return None
        try:
            template = compile_template(publish, ("queue_kwargs",), "publish_kwargs")
        except ConfigError:
            return None  # it uses the event: rendered for each one
        try:
            return check_target(template.render({"queue_kwargs": self.queue_kwargs}))
        except TemplateError as exc:
            raise ConfigError(exc.message, "publish_kwargs") from None

    # -- rendering ----------------------------------------------------------------------------

    def render(self, event_name: str, event_data: Any) -> Notification:
        """The message for one event: exchange, routing key, body and properties (no I/O);
        with ``format: cloudevents``, as a CloudEvent (:mod:`eventisc.cloudevents`).

        Raises TemplateError when a template fails or the body cannot be encoded as JSON.
        Constant properties are shared by every notification: treat the payload as read-only.
        """
        ctx = None
        try:
            target = self._target
            if target is None:
                ctx = self._context(event_name, event_data)
                target = check_target(self._publish.render(ctx))
            if self._body is None:
                body = self.json_encoding.encode(event_data, _EVENT_DATA)
            else:
                ctx = ctx or self._context(event_name, event_data)
                body = self._body.render(ctx)
                if isinstance(body, str):
                    check_text(body, "the rendered body")
                elif not isinstance(body, bytes):
                    body = self.json_encoding.encode(body, "the rendered body")
            properties = self._static_properties
            if properties is None:
                ctx = ctx or self._context(event_name, event_data)
                properties = check_properties(self._properties.render(ctx))
        except TemplateError as exc:
            exc.listener = exc.listener or self.name
            raise
        payload = {
            "exchange": target[0],
            "routing_key": target[1],
            "body": body,
            "properties": properties,
            "mandatory": self.mandatory,
        }
        if self.cloudevents is not None:
            return self._cloudevent(self.cloudevents, event_name, event_data, ctx, payload)
        return Notification(self.name, "rabbit", event_name, payload)

    def _cloudevent(
        self,
        settings: CloudEvents,
        event_name: str,
        event_data: Any,
        ctx: dict[str, Any] | None,
        payload: dict[str, Any],
    ) -> Notification:
        """The message as a CloudEvent, its attributes kept in the payload (``cloudevent``):
        in ``cloudEvents_*`` headers with the body as data (binary), or as the JSON body
        (structured). ``content_type`` is the data's (binary) or the event format's."""
        properties, body = payload["properties"], payload["body"]
        datacontenttype = properties.get("content_type")
        if settings.subject is not None and ctx is None:
            ctx = self._context(event_name, event_data)
        notification_id = new_id()
        try:
            attributes = settings.attributes(notification_id, event_name, ctx, datacontenttype)
        except TemplateError as exc:
            exc.listener = exc.listener or self.name
            raise
        if settings.mode == "binary":
            headers = {**(properties.get("headers") or {}), **amqp_headers(attributes)}
            payload["properties"] = {**properties, "headers": headers}
        else:
            json_data = (
                isinstance(body, str)
                and is_json_type(datacontenttype)
                and (self._body is None or is_json_text(body))
            )
            payload["body"] = structured(attributes, body, json_data)
            payload["properties"] = {**properties, "content_type": STRUCTURED_TYPE}
        payload[PAYLOAD_KEY] = attributes
        return Notification(self.name, "rabbit", event_name, payload, notification_id)

    def _context(self, event_name: str, event_data: Any) -> dict[str, Any]:
        return {
            "event_name": event_name,
            "event_data": event_data,
            "queue_kwargs": self.queue_kwargs,
        }

    # -- delivering ---------------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        """Publish the message on a pooled connection; return "confirmed" (or "published"
        with confirm off).

        The message's ``message_id`` is the notification id unless the listener's
        ``properties`` set one. Raises ConnectError, DeliveryTimeout or Rejected (see
        :func:`translate_error`), and :class:`~eventisc.errors.StaleConnection` when the pooled
        connection turned out dead: it is dropped, and the delivery layers send once more at
        once, on a fresh one.
        """
        p = notification.payload
        basic_properties = amqp_properties(self._basic_properties(notification), notification)
        args = (p["exchange"], p["routing_key"], p["body"], basic_properties, p["mandatory"])
        pool = self._pool
        try:
            entry = pool.checkout()  # raises DeliveryError when connecting fails
        except DeliveryError as exc:  # connecting or declaring failed: already translated
            exc.listener = exc.listener or self.name
            raise
        try:
            if self.confirm:
                entry.item.publish_confirmed(args, self.timeout)
            else:
                entry.item.channel.basic_publish(*args)
        except BaseException as exc:
            pool.checkin(entry, broken=breaks_connection(exc))
            if not isinstance(exc, Exception):
                raise
            raise self._failure(exc) from exc
        pool.checkin(entry)
        return "confirmed" if self.confirm else "published"

    def _basic_properties(self, notification: Notification) -> Any:
        """The message's pika properties: the rendered ones, and the notification id as
        ``message_id`` unless the listener's ``properties`` set one (then the payload holds
        it, even when it rendered to None).

        Raises the translated error for properties pika refuses (a replayed payload).
        """
        properties = notification.payload["properties"]
        try:
            if self._message_ids and "message_id" not in properties:
                return pika.BasicProperties(message_id=notification.id, **properties)
            if properties is self._static_properties:
                return self._static_basic_properties
            return pika.BasicProperties(**properties)
        except Exception as exc:  # a replayed payload with unknown properties
            error = translate_error(exc, self.target)
            error.listener = self.name
            raise error from exc

    def _failure(self, exc: Exception) -> DeliveryError:
        """The error for a failed publish: :class:`StaleConnection` when the connection died
        (its idle siblings are checked too), else the translation of ``exc``."""
        error = translate_error(exc, self.target, timeout=self.timeout)
        error.listener = self.name
        if connection_died(exc) and error.transient:  # not a refusal (a 404 closes channels)
            self._pool.sweep(PooledConnection.probe)  # its idle siblings may be dead too
            return StaleConnection(
                f"the pooled connection to RabbitMQ at {self.target} died ({_short(exc)}); "
                "publishing again on a fresh connection",
                self.name,
            )
        return error

    def delivers_async(self) -> bool:
        """True when background delivery pipelines confirms (``pipeline`` and ``confirm``)."""
        return self._pipeline is not None

    def deliver_async(self, notification: Notification, done: Done) -> None:
        """Publish without waiting; ``done(detail, error)`` is called exactly once.

        With ``pipeline`` and ``confirm`` on, ``done`` runs on the publisher's I/O thread when
        the confirm (or nack, return, loss, timeout) comes, or at once in this thread when the
        message is refused straight away; it must be quick. Otherwise this is :meth:`deliver`
        followed by ``done``. Errors are those of :meth:`deliver`.
        """
        publisher = self._pipeline
        if publisher is None:
            try:
                detail = self.deliver(notification)
            except Exception as exc:
                call_done(done, None, exc)
                return
            call_done(done, detail, None)
            return
        p = notification.payload
        try:
            basic_properties = amqp_properties(self._basic_properties(notification), notification)
        except DeliveryError as exc:
            call_done(done, None, exc)
            return
        publisher.publish(
            p["exchange"], p["routing_key"], p["body"], basic_properties, p["mandatory"], done
        )

    def _connect(self) -> PooledConnection:
        """Open a connection and its channel, then declare (the pool's ``create``).

        Raises the translated error, so the caller does not retry a failed connect.
        """
        params = self._parameters
        try:
            connection = pika.BlockingConnection(params)
        except Exception as exc:
            # Connecting is bounded by stack_timeout: the listener's timeout unless the URL
            # sets it.
            raise translate_error(exc, self.target, timeout=params.stack_timeout) from exc
        doing = "open a channel"
        try:
            channel = connection.channel()
            if self.confirm:
                channel.confirm_delivery()
            exchange, queue = self._exchange, self._queue
            if exchange is not None:
                doing = f"declare exchange {exchange['exchange']!r}"
                channel.exchange_declare(**exchange)
            if queue is not None:
                doing = f"declare queue {queue['queue']!r}"
                channel.queue_declare(**queue)
            if exchange is not None and queue is not None:
                doing = f"bind queue {queue['queue']!r} to exchange {exchange['exchange']!r}"
                channel.queue_bind(queue["queue"], exchange["exchange"], **(self._bind or {}))
        except Exception as exc:
            close_connection(connection, self.timeout)
            raise translate_error(exc, self.target, timeout=self.timeout, doing=doing) from exc
        return PooledConnection(connection, channel)

    def _close_connection(self, conn: PooledConnection) -> None:
        conn.close(self.timeout)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def pool(self) -> QueuedPool[PooledConnection]:
        """The connection pool; ``pool.stats()`` counts open, idle and in-use connections."""
        return self._pool

    def heartbeat(self) -> None:
        """Let every idle connection send and read heartbeats; drop the dead and expired ones."""
        self._pool.sweep(PooledConnection.probe)

    def close(self) -> None:
        """Close idle connections now, busy ones when they come back; reconnects if used.

        The pipelined publisher first waits up to ``timeout`` for the confirms it is owed.
        """
        self._pool.close()
        if self._pipeline is not None:
            self._pipeline.close()

    def describe(self) -> str:
        """``amqp://guest:***@host:5672/%2F exchange='' routing_key=myqueue``."""
        exchange, routing_key = self._target or (
            self.publish_kwargs["exchange"],
            self.publish_kwargs["routing_key"],
        )
        return f"{shown_url(self.url)} exchange={exchange!r} routing_key={routing_key!r}"


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
