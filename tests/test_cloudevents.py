"""CloudEvents 1.0 on the http and rabbit kinds: what a real receiver on 127.0.0.1 and the real
RabbitMQ get, read back with the CloudEvents SDK; the config errors; the attributes kept in
the rendered (stored) payload."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

try:  # the SDK's 1.x API (2.x keeps it under cloudevents.v1)
    from cloudevents.http import from_http, from_json
except ImportError:  # pragma: no cover - depends on the SDK's version
    from cloudevents.v1.http import from_http, from_json

import eventisc
from eventisc import App
from eventisc.cloudevents import check_source, source_problem
from eventisc.errors import ConfigError, TemplateError
from eventisc.listeners.http import HttpListener
from eventisc.listeners.rabbit import RabbitListener
from eventisc.spool import Spool, SpoolItem
from eventisc.testing import capture
from eventisc.webhooks import verify

from .amqp import Broker
from .receiver import Receiver, Request, Response
from .support import http, run_cli

SOURCE = "https://shop.example.com/users"
FAST_RETRY = {"max_attempts": 3, "backoff_factor": 0, "jitter": 0}
SECRET = "whsec_" + base64.b64encode(b"a secret key of 32 bytes, for us").decode()
USER = {"user": {"id": 7, "email": "ada@example.com"}}


def ce_http(url: str, **options: Any) -> dict[str, Any]:
    """An http listener sending CloudEvents of user_created."""
    defaults = {"subject": "{event_data[user][id]}", "data": {"email": "{event_data[user][email]}"}}
    return http(url, "shop.user_created", format="cloudevents", **{**defaults, **options})


def parse(request: Request) -> Any:
    """The CloudEvent a request carries, read by the SDK (binary or structured)."""
    return from_http(request.headers, request.body)


def utc(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert when.utcoffset() == timedelta(0)
    return when


def check_event(event: Any, notification_id: str, *, source: str = SOURCE) -> None:
    assert event["specversion"] == "1.0"
    assert event["id"] == notification_id
    assert event["source"] == source
    assert event["type"] == "shop.user_created"  # the name as triggered, prefix included
    assert event["subject"] == "7"
    assert event["datacontenttype"] == "application/json"
    assert abs(utc(str(event["time"])) - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert event.data == {"email": "ada@example.com"}


# -- the source ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [SOURCE, "/shop/users", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "a%20b"]
)
def test_a_uri_reference_is_a_source(value: str) -> None:
    assert check_source(value, "source") == value


@pytest.mark.parametrize(
    "value, problem",
    [
        ("", "non-empty"),
        ("my shop", "characters a URI cannot"),
        ("{event_name}", "characters a URI cannot"),
        ("50%", "%XX escape"),
        ("a#b#c", "more than one `#`"),
        ("1shop:users", "no valid scheme"),
    ],
)
def test_what_is_no_source(value: str, problem: str) -> None:
    assert problem in str(source_problem(value))


# -- config errors, at load, with their path -----------------------------------------------------


@pytest.mark.parametrize(
    "listener, top, path, message",
    [
        ({"format": "cloudevents"}, {}, "listeners[0].source", "needs a `source`"),
        ({"format": "cloudevents", "source": "not a uri"}, {}, "listeners[0].source", "URI"),
        ({"format": "cloudevents"}, {"source": "x y"}, "source", "URI"),
        ({"format": "xml"}, {"source": SOURCE}, "listeners[0].format", "'xml'"),
        (
            {"format": "cloudevents", "cloudevents_mode": "batch"},
            {"source": SOURCE},
            "listeners[0].cloudevents_mode",
            "'batch'",
        ),
        (
            {"cloudevents_mode": "structured"},
            {"source": SOURCE},
            "listeners[0].cloudevents_mode",
            "needs `format: cloudevents`",
        ),
        ({"subject": "{event_name}"}, {}, "listeners[0].subject", "needs `format: cloudevents`"),
        ({"source": SOURCE}, {}, "listeners[0].source", "needs `format: cloudevents`"),
        (
            {"format": "cloudevents", "subject": "{event_data[user]"},
            {"source": SOURCE},
            "listeners[0].subject",
            "closing `}`",
        ),
        (
            {"format": "cloudevents", "subject": "{__import__('os')}"},
            {"source": SOURCE},
            "listeners[0].subject",
            "",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["http", "rabbit"])
def test_bad_cloudevents_options_fail_at_load_with_their_path(
    kind: str, listener: dict[str, Any], top: dict[str, Any], path: str, message: str
) -> None:
    target = (
        {"url": "http://127.0.0.1:9/hook"}
        if kind == "http"
        else {"url": "amqp://guest:guest@127.0.0.1:9/%2F", "publish_kwargs": {"routing_key": "q"}}
    )
    config = {
        "listeners": [{"kind": kind, "event_name": "e", **target, **listener}],
        **top,
    }
    with pytest.raises(ConfigError) as info:
        App.from_config(config, "events.yaml")
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value).startswith(f"events.yaml: {path}: ")


def test_a_listener_added_later_takes_the_apps_source_or_fails_at_its_path() -> None:
    with App("", [], source=SOURCE) as app:
        listener = app.add_listener(ce_http("http://127.0.0.1:9/hook"))
        assert listener.cloudevents is not None and listener.cloudevents.source == SOURCE
    with App("", []) as bare, pytest.raises(ConfigError) as info:
        bare.add_listener(ce_http("http://127.0.0.1:9/hook"))
    assert info.value.path == "listeners[0].source"


def test_the_listeners_own_source_wins_over_the_apps() -> None:
    own = "/hooks/crm"
    with App("", [ce_http("http://127.0.0.1:9/hook", source=own)], source=SOURCE) as app:
        notification = app.listeners[0].render("shop.user_created", USER)
    assert notification.payload["cloudevent"]["source"] == own


def test_the_config_files_name_is_config_source() -> None:
    app = App.from_config({"source": SOURCE, "listeners": []}, "events.yaml")
    assert (app.source, app.config_source) == (SOURCE, "events.yaml")


def test_a_listener_used_without_an_app_needs_its_own_source() -> None:
    listener = HttpListener(url="http://127.0.0.1:9/", event_name="e", format="cloudevents")
    with pytest.raises(TemplateError, match="needs a `source`"):
        listener.render("e", {})


def test_a_subject_that_renders_to_no_text_fails_for_that_event() -> None:
    listener = HttpListener(
        url="http://127.0.0.1:9/",
        event_name="e",
        format="cloudevents",
        source=SOURCE,
        subject="{event_data[user]}",
    )
    with pytest.raises(TemplateError, match="subject renders to a dict"):
        listener.render("e", USER)
    assert "subject" not in listener.render("e", {"user": None}).payload["cloudevent"]


# -- HTTP ------------------------------------------------------------------------------------


def test_http_binary_mode_sends_ce_headers_and_the_data_as_body(receiver: Receiver) -> None:
    app = eventisc.create_app(name_prefix="shop.", listeners=[ce_http(receiver.url)], source=SOURCE)
    report = app.dispatch("user_created", USER)
    assert report.ok
    (delivery,) = report
    assert delivery.notification is not None
    (request,) = receiver.wait_for(1)
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["ce-id"] == headers["idempotency-key"] == delivery.notification.id
    assert json.loads(request.body) == {"email": "ada@example.com"}
    check_event(parse(request), delivery.notification.id)


def test_http_structured_mode_sends_the_event_as_json(receiver: Receiver) -> None:
    app = eventisc.create_app(
        name_prefix="shop.",
        listeners=[ce_http(receiver.url, cloudevents_mode="structured")],
        source=SOURCE,
    )
    (delivery,) = app.dispatch("user_created", USER)
    assert delivery.ok and delivery.notification is not None
    (request,) = receiver.wait_for(1)
    assert request.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    assert not any(k.lower().startswith("ce-") for k in request.headers)
    assert request.json["data"] == {"email": "ada@example.com"}
    check_event(parse(request), delivery.notification.id)
    check_event(from_json(request.body), delivery.notification.id)


def test_header_values_are_percent_encoded_and_read_back(receiver: Receiver) -> None:
    app = eventisc.create_app(
        listeners=[ce_http(receiver.url, subject="{event_data[name]}")], source=SOURCE
    )
    assert app.trigger("shop.user_created", {"name": 'Zoë "50%" Smith', **USER}) == 1
    (request,) = receiver.wait_for(1)
    assert request.headers["ce-subject"] == "Zo%C3%AB%20%2250%25%22%20Smith"
    # The SDK's newer HTTP binding decodes them (its 1.x API hands the header as it came).
    binding = pytest.importorskip("cloudevents.core.bindings.http")
    formats = pytest.importorskip("cloudevents.core.formats.json")
    message = binding.HTTPMessage(headers=request.headers, body=request.body)
    event = binding.from_http(message, formats.JSONFormat())
    assert event.get_subject() == 'Zoë "50%" Smith'
    assert event.get_id() == request.headers["ce-id"]


def test_a_retry_sends_the_same_event(receiver: Receiver) -> None:
    # Given a receiver that answers 503 once, when the event is sent with retries,
    # then both attempts carry the same id and time.
    receiver.respond(Response(503))
    app = eventisc.create_app(listeners=[ce_http(receiver.url)], source=SOURCE, retry=FAST_RETRY)
    (delivery,) = app.dispatch("shop.user_created", USER)
    assert delivery.ok and delivery.attempts == 2 and delivery.notification is not None
    first, second = (parse(r) for r in receiver.wait_for(2))
    assert first["id"] == second["id"] == delivery.notification.id
    assert first["time"] == second["time"]
    check_event(second, delivery.notification.id)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_signing_covers_the_body_sent(receiver: Receiver, mode: str) -> None:
    app = eventisc.create_app(
        listeners=[ce_http(receiver.url, cloudevents_mode=mode, signing={"secret": SECRET})],
        source=SOURCE,
    )
    (delivery,) = app.dispatch("shop.user_created", USER)
    assert delivery.ok and delivery.notification is not None
    (request,) = receiver.wait_for(1)
    verify(SECRET, request.headers, request.body)  # raises unless it matches
    assert request.headers["webhook-id"] == delivery.notification.id
    check_event(parse(request), delivery.notification.id)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_a_form_body_is_the_events_form_data(receiver: Receiver, mode: str) -> None:
    app = eventisc.create_app(
        listeners=[ce_http(receiver.url, request_format="form", cloudevents_mode=mode)],
        source=SOURCE,
    )
    assert app.trigger("shop.user_created", USER) == 1
    (request,) = receiver.wait_for(1)
    event = parse(request)
    assert event["datacontenttype"] == "application/x-www-form-urlencoded"
    data = event.data.decode() if isinstance(event.data, bytes) else event.data
    assert data == "email=ada%40example.com"


def test_an_event_without_data_has_no_datacontenttype(receiver: Receiver) -> None:
    listener = {**ce_http(receiver.url), "data": None}
    app = eventisc.create_app(listeners=[listener], source=SOURCE)
    assert app.trigger("shop.user_created", USER) == 1
    (request,) = receiver.wait_for(1)
    assert request.body == b""
    assert "datacontenttype" not in parse(request).get_attributes()


def test_a_stored_notification_is_sent_again_as_the_same_event(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Given a notification rendered once and kept in the spool, when it is delivered now and
    # replayed later by another process, then both requests carry the same event.
    path = tmp_path / "events.json"
    spool_path = tmp_path / "spool.db"
    config = {
        "source": SOURCE,
        "spool": {"path": str(spool_path)},
        "listeners": [{**ce_http(receiver.url), "name": "hook"}],
    }
    path.write_text(json.dumps(config))
    with eventisc.create_app(config_file=str(path)) as app:
        (listener,) = app.listeners
        notification = listener.render("shop.user_created", USER)
        spool = app._deliverer.spool
        assert spool is not None
        spool.add_many([SpoolItem(notification)])
        listener.deliver(notification)
    replay = run_cli("spool", "replay", str(path))
    assert replay.returncode == 0, replay.stderr
    first, second = (parse(r) for r in receiver.wait_for(2))
    assert first.get_attributes() == second.get_attributes()
    assert first["time"] == notification.payload["cloudevent"]["time"]
    check_event(second, notification.id)
    assert Spool(spool_path).count() == 0


# -- dry-run and capture ---------------------------------------------------------------------


def test_dry_run_shows_the_attributes(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    app = eventisc.create_app(listeners=[ce_http(receiver.url)], source=SOURCE, dry_run=True)
    with caplog.at_level(logging.INFO, logger="eventisc"):
        (delivery,) = app.dispatch("shop.user_created", USER)
    assert delivery.notification is not None
    assert f"'ce-id': '{delivery.notification.id}'" in caplog.text
    assert f"'source': '{SOURCE}'" in caplog.text
    assert receiver.requests == []


def test_capture_shows_the_attributes() -> None:
    app = eventisc.create_app(listeners=[ce_http("http://127.0.0.1:9/hook")], source=SOURCE)
    with capture(app) as events:
        app.trigger("shop.user_created", USER)
    (notification,) = events.notifications
    attributes = notification.payload["cloudevent"]
    assert attributes["id"] == notification.id
    assert (attributes["type"], attributes["subject"]) == ("shop.user_created", "7")


# -- RabbitMQ --------------------------------------------------------------------------------


def ce_rabbit(url: str, queue: str, **options: Any) -> dict[str, Any]:
    return {
        "kind": "rabbit",
        "event_name": "shop.user_created",
        "url": url,
        "queue_kwargs": {"queue": {"queue": queue, "auto_delete": True}},
        "format": "cloudevents",
        "subject": "{event_data[user][id]}",
        "body": {"email": "{event_data[user][email]}"},
        **options,
    }


def test_rabbit_binary_mode_sends_cloudevents_headers(rabbitmq_url: str, broker: Broker) -> None:
    queue = broker.name()
    with eventisc.create_app(
        name_prefix="shop.",
        listeners=[ce_rabbit(rabbitmq_url, queue, properties={"headers": {"tenant": "eu"}})],
        source=SOURCE,
    ) as app:
        (delivery,) = app.dispatch("user_created", USER)
    assert delivery.ok and delivery.notification is not None
    ((_, properties, body),) = broker.get(queue)
    headers = properties.headers
    assert headers["tenant"] == "eu"
    assert headers["cloudEvents_id"] == properties.message_id == delivery.notification.id
    assert headers["cloudEvents_source"] == SOURCE
    assert headers["cloudEvents_type"] == "shop.user_created"
    assert headers["cloudEvents_specversion"] == "1.0"
    assert headers["cloudEvents_subject"] == "7"
    utc(headers["cloudEvents_time"])
    assert "cloudEvents_datacontenttype" not in headers
    assert properties.content_type == "application/json"
    assert json.loads(body) == {"email": "ada@example.com"}
    amqp = pytest.importorskip("cloudevents.core.bindings.amqp")
    formats = pytest.importorskip("cloudevents.core.formats.json")
    message = amqp.AMQPMessage(
        properties={"content-type": properties.content_type},
        application_properties=headers,
        application_data=body,
    )
    event = amqp.from_binary(message, formats.JSONFormat())
    assert event.get_id() == delivery.notification.id
    assert event.get_data() == {"email": "ada@example.com"}


def test_rabbit_structured_mode_sends_the_event_as_json(rabbitmq_url: str, broker: Broker) -> None:
    queue = broker.name()
    with eventisc.create_app(
        name_prefix="shop.",
        listeners=[ce_rabbit(rabbitmq_url, queue, cloudevents_mode="structured")],
        source=SOURCE,
    ) as app:
        (delivery,) = app.dispatch("user_created", USER)
    assert delivery.ok and delivery.notification is not None
    ((_, properties, body),) = broker.get(queue)
    assert properties.content_type == "application/cloudevents+json"
    assert properties.message_id == delivery.notification.id
    assert not any(k.startswith("cloudEvents_") for k in properties.headers or {})
    check_event(from_json(body), delivery.notification.id)


def test_a_rabbit_message_rendered_once_is_the_same_event_twice(
    rabbitmq_url: str, broker: Broker
) -> None:
    queue = broker.name()
    with App("", [ce_rabbit(rabbitmq_url, queue)], source=SOURCE) as app:
        (listener,) = app.listeners
        assert isinstance(listener, RabbitListener)
        notification = listener.render("shop.user_created", USER)
        listener.deliver(notification)
        listener.deliver(notification)
    first, second = broker.get(queue, 2)
    assert first[1].headers == second[1].headers
    assert first[1].headers["cloudEvents_time"] == notification.payload["cloudevent"]["time"]


def test_a_text_body_that_is_not_json_is_string_data() -> None:
    listener = RabbitListener(
        "e",
        "amqp://guest:guest@127.0.0.1:9/%2F",
        publish_kwargs={"routing_key": "q"},
        body="plain {event_name}",
        properties={"content_type": "text/plain"},
        format="cloudevents",
        cloudevents_mode="structured",
        source=SOURCE,
    )
    event = from_json(listener.render("e", {}).payload["body"])
    assert (event["datacontenttype"], event.data) == ("text/plain", "plain e")


def test_an_outbox_row_is_sent_as_the_event_rendered_in_the_transaction(
    receiver: Receiver, postgres_url: str, outbox_table: str
) -> None:
    # Given an event written to the outbox in the caller's transaction, when a relay sends it
    # later, then the request carries the id and time rendered at trigger time.
    import psycopg

    app = App.from_config(
        {
            "source": SOURCE,
            "delivery": "outbox",
            "outbox": {"url": postgres_url, "table": outbox_table},
            "listeners": [ce_http(receiver.url, cloudevents_mode="structured")],
        }
    )
    with app, psycopg.connect(postgres_url) as conn:
        (delivery,) = app.dispatch("shop.user_created", USER, connection=conn)
        conn.commit()
        assert delivery.notification is not None
        rendered = delivery.notification.payload["cloudevent"]
        assert app.run_relay(once=True, install_signals=False) == 0
    (request,) = receiver.wait_for(1)
    event = parse(request)
    assert (event["id"], event["time"]) == (delivery.notification.id, rendered["time"])
    check_event(event, delivery.notification.id)
