"""The http kind's idempotency header: the notification id on every attempt of a notification,
against a real HTTP server (tests/receiver.py)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

import eventisc
from eventisc import ConfigError
from eventisc.listeners.http import HttpListener

from .receiver import Receiver, Response
from .support import http, run_cli

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

#: Retry at once: three attempts, no backoff.
FAST_RETRY = {"max_attempts": 3, "backoff_factor": 0, "jitter": 0}


def keys(receiver: Receiver, name: str = "Idempotency-Key") -> list[str | None]:
    """The value of header ``name`` (any case) in each request the receiver got, in order."""
    return [
        next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)
        for request in receiver.requests
    ]


def dispatch_one(app: eventisc.App, data: Any = None) -> Any:
    """Dispatch event ``e`` to the app's single listener; its Delivery."""
    (delivery,) = app.dispatch("e", {"n": 1} if data is None else data)
    return delivery


def test_every_attempt_of_a_notification_carries_the_same_key(receiver: Receiver) -> None:
    # Given a receiver that fails twice before it takes the notification
    receiver.script.extend([Response(503), Response(503), Response(200)])
    app = eventisc.create_app(listeners=[http(receiver.url, data="{event_data}")], retry=FAST_RETRY)
    # When one event is triggered
    delivery = dispatch_one(app)
    # Then all three attempts carried the notification's id, and the next event another one
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert keys(receiver) == [delivery.notification.id] * 3
    assert re.fullmatch("[0-9a-f]{32}", delivery.notification.id)
    assert "Idempotency-Key" in receiver.requests[0].headers  # the name as written
    second = dispatch_one(app)
    assert keys(receiver)[3] == second.notification.id != delivery.notification.id
    app.close()


def test_null_sends_no_such_header(receiver: Receiver) -> None:
    app = eventisc.create_app(listeners=[http(receiver.url, idempotency_header=None)])
    assert dispatch_one(app).status == "delivered"
    assert keys(receiver) == [None]
    app.close()


def test_a_name_of_your_own(receiver: Receiver) -> None:
    receiver.script.extend([Response(503), Response(200)])
    app = eventisc.create_app(
        listeners=[http(receiver.url, idempotency_header="X-Event-Id")], retry=FAST_RETRY
    )
    delivery = dispatch_one(app)
    assert keys(receiver, "X-Event-Id") == [delivery.notification.id] * 2
    assert keys(receiver) == [None, None]
    app.close()


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"idempotency-key": "order-{event_data['order']}"}},
        {"requests_kwargs": {"headers": {"IDEMPOTENCY-KEY": "order-7"}}},
        {"idempotency_header": "X-Key", "headers": {"x-key": "order-{event_data['order']}"}},
    ],
)
def test_a_header_of_that_name_in_the_listener_s_own_headers_wins(
    receiver: Receiver, options: dict[str, Any]
) -> None:
    receiver.script.extend([Response(503), Response(200)])
    app = eventisc.create_app(listeners=[http(receiver.url, **options)], retry=FAST_RETRY)
    listener = app.listeners[0]
    assert isinstance(listener, HttpListener) and listener.idempotency_header is None
    assert dispatch_one(app, {"order": 7}).status == "delivered"
    name = options.get("idempotency_header", "Idempotency-Key")
    assert keys(receiver, name) == ["order-7", "order-7"]  # the one value, sent once each
    app.close()


def test_a_spool_replay_sends_the_id_of_the_first_attempt(
    receiver: Receiver, tmp_path: Path
) -> None:
    # Given a notification kept in the spool after its only attempt failed
    config = tmp_path / "events.json"
    config.write_text(
        json.dumps(
            {
                "spool": {"path": str(tmp_path / "spool.db")},
                "listeners": [{**http(receiver.url, data="{event_data}"), "name": "hook"}],
            }
        )
    )
    receiver.script.append(Response(503))
    with eventisc.create_app(config_file=str(config)) as app:
        delivery = dispatch_one(app)
    assert delivery.status == "spooled"
    # When another process replays it
    replay = run_cli("spool", "replay", str(config))
    # Then the receiver sees the same key again
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 delivered" in replay.stdout
    assert keys(receiver) == [delivery.notification.id] * 2
    assert [r.json for r in receiver.requests] == [{"n": 1}] * 2


def test_redirects_keep_the_key(receiver: Receiver) -> None:
    receiver.script.append(Response(307, headers={"Location": receiver.url + "/there"}))
    app = eventisc.create_app(listeners=[http(receiver.url + "/here", follow_redirects=True)])
    delivery = dispatch_one(app)
    assert [r.path for r in receiver.requests] == ["/here", "/there"]
    assert keys(receiver) == [delivery.notification.id] * 2
    app.close()


def test_the_payload_is_unchanged_and_dry_run_shows_the_header(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # The payload stays what the listener rendered (two renders of an event are equal); the
    # header is added when sending, and shown by dry-run.
    listener = HttpListener("e", receiver.url, data={"n": "{event_data}"})
    notification = listener.render("e", 1)
    assert notification.payload["headers"] == {"Content-Type": "application/json; charset=utf-8"}
    app = eventisc.create_app(listeners=[http(receiver.url)], dry_run=True)
    with caplog.at_level(logging.INFO, logger="eventisc"):
        delivery = dispatch_one(app)
    assert receiver.requests == []
    (shown,) = [r.getMessage() for r in caplog.records if "would send" in r.getMessage()]
    assert f"'Idempotency-Key': '{delivery.notification.id}'" in shown
    app.close()
    caplog.clear()
    quiet = eventisc.create_app(listeners=[http(receiver.url, idempotency_header=None)])
    quiet.dry_run = True
    with caplog.at_level(logging.INFO, logger="eventisc"):
        dispatch_one(quiet)
    assert "Idempotency-Key" not in caplog.text and "would send" in caplog.text
    quiet.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, "5 is not of type 'string', 'null'"),
        (["Idempotency-Key"], "is not of type 'string', 'null'"),
        ("", "''"),
        ("Idempotency Key", "must be a header name"),
        ("content-length", "written by the listener itself"),
    ],
)
def test_a_bad_header_name_is_a_config_error_naming_the_option(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(
            listeners=[http("http://127.0.0.1:1/"), http("http://h/", idempotency_header=value)]
        )
    assert str(info.value).startswith("listeners[1].idempotency_header: ")
    assert message in str(info.value)
    with pytest.raises(ConfigError, match="^idempotency_header: "):
        HttpListener("e", "http://h/", idempotency_header=value)
