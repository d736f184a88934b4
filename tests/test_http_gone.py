"""A receiver answering 410 Gone disables its http listener (``disable_on_gone``): sync,
background with retries, the outbox relay's sender; hooks, logs, stats, Prometheus."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import eventisc
from eventisc import ConfigError, HTTPStatusError, ListenerDisabled
from eventisc.delivery.sender import Layer
from eventisc.report import Delivery

from .receiver import Response
from .support import http

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

FAST_RETRY = {"max_attempts": 3, "backoff_factor": 0.01, "max_backoff": 0.01, "jitter": 0}


def test_410_disables_the_listener_until_it_is_enabled(receiver, caplog):
    # Given a receiver whose endpoint was removed (410), and a hook on "disabled"
    app = eventisc.create_app(listeners=[http("http://u:secret@" + receiver.url[7:] + "/h")])
    seen = []
    app.on("disabled", lambda name, error: seen.append((name, error)))
    receiver.respond(Response(410, b"gone"))
    # When the first trigger gets the 410
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        report = app.dispatch("e")
    # Then the listener is disabled: one warning naming it and its url (password masked)
    (delivery,) = report.deliveries
    assert delivery.status == "failed"
    assert isinstance(delivery.error, ListenerDisabled)
    assert isinstance(delivery.error.__cause__, HTTPStatusError)
    assert delivery.error.__cause__.status == 410
    [(name, error)] = seen
    assert name == app.listeners[0].name
    assert isinstance(error, ListenerDisabled)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "disabled" in text and "410 Gone" in text and "/h" in text
    assert "secret" not in text and "***" in text
    # When the next trigger comes: it is not sent, and reported failed with ListenerDisabled
    report = app.dispatch("e")
    assert len(receiver.requests) == 1
    (delivery,) = report.deliveries
    assert delivery.status == "failed"
    assert isinstance(delivery.error, ListenerDisabled)
    assert "App.enable" in str(delivery.error)
    assert app.trigger("e") == 0
    assert len(receiver.requests) == 1
    assert len(seen) == 1  # the hook ran once
    assert app.stats()["listeners"][name]["failed"] == 3
    # When it is enabled again: the next one is sent
    assert app.enable(name) is True
    assert app.enable(name) is False
    assert app.trigger("e") == 1
    assert len(receiver.wait_for(2)) == 2


def test_the_direct_step_is_guarded_too(receiver):
    # Given the fast path (one attempt, no spool, no hooks)
    app = eventisc.create_app(listeners=[http(receiver.url + "/h", name="gone")])
    receiver.respond(Response(410))
    app.raise_errors = True
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e")
    assert isinstance(info.value.failures[0][1], ListenerDisabled)
    with pytest.raises(eventisc.TriggerError) as info:
        app.trigger("e")
    assert isinstance(info.value.failures[0][1], ListenerDisabled)
    assert len(receiver.requests) == 1
    with pytest.raises(KeyError):
        app.enable("nobody")


def test_background_with_retries_does_not_retry_a_410(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/h", name="gone")],
        delivery="background",
        retry=FAST_RETRY,
    )
    try:
        receiver.respond(Response(410))
        first = app.dispatch("e")
        assert first.wait(10)
        assert first.deliveries[0].attempts == 1
        assert isinstance(first.deliveries[0].error, ListenerDisabled)
        second = app.dispatch("e")
        assert second.wait(10)
        assert isinstance(second.deliveries[0].error, ListenerDisabled)
        assert second.deliveries[0].attempts == 1
        assert len(receiver.requests) == 1
        listener = app.stats()["listeners"]["gone"]
        assert (listener["retried"], listener["failed"]) == (0, 2)
        app.enable("gone")
        third = app.dispatch("e")
        assert third.wait(10)
        assert third.deliveries[0].status == "delivered"
        assert len(receiver.requests) == 2
    finally:
        app.close()


def test_a_notification_for_a_disabled_listener_is_spooled_as_a_dead_letter(receiver, tmp_path):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/h", name="gone")],
        spool={"path": str(tmp_path / "spool.db")},
    )
    try:
        receiver.respond(Response(410))
        statuses = [app.dispatch("e").deliveries[0].status for _ in range(2)]
        assert statuses == ["spooled", "spooled"]
        assert len(receiver.requests) == 1
        assert app.stats()["listeners"]["gone"]["spooled"] == 2
    finally:
        app.close()


def test_the_relay_sender_checks_too(receiver):
    # The outbox relay builds its senders with Deliverer.relay_sender: the check is a layer
    app = eventisc.create_app(listeners=[http(receiver.url + "/h", name="gone")])
    sender, _ = app.relay_senders(Layer(), lambda delivery, outcome: None)["gone"]
    receiver.respond(Response(410))
    notification = app.listeners[0].render("e", {})
    first = Delivery(app.listeners[0], notification)
    sender.attempt(first)
    assert isinstance(first.error, ListenerDisabled)
    second = Delivery(app.listeners[0], notification)
    sender.attempt(second)
    assert isinstance(second.error, ListenerDisabled)
    assert len(receiver.requests) == 1


def test_disable_on_gone_false_keeps_a_410_an_ordinary_failure(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/h", name="kept", disable_on_gone=False)]
    )
    receiver.respond(Response(410), Response(410))
    for _ in range(2):
        error = app.dispatch("e").deliveries[0].error
        assert isinstance(error, HTTPStatusError) and error.status == 410
    assert len(receiver.requests) == 2
    assert app.stats()["listeners"]["kept"]["disabled"] is False


def test_stats_and_prometheus_show_a_disabled_listener(receiver):
    app = eventisc.create_app(
        listeners=[http(receiver.url + "/h", name="gone"), http(receiver.url + "/ok", name="ok")]
    )
    receiver.respond(Response(410))
    app.trigger("e")
    stats = app.stats()
    assert stats["listeners"]["gone"]["disabled"] is True
    assert stats["listeners"]["gone"]["disabled_count"] == 1
    assert stats["listeners"]["ok"]["disabled"] is False
    assert stats["app"]["disabled"] == 1
    registry = CollectorRegistry()
    app.register_prometheus(registry, name="shop")
    text = generate_latest(registry).decode()
    assert 'eventisc_listener_disabled{app="shop",listener="gone"} 1.0' in text
    assert 'eventisc_listener_disabled{app="shop",listener="ok"} 0.0' in text
    app.enable("gone")
    assert app.stats()["listeners"]["gone"]["disabled"] is False


def test_a_bad_disable_on_gone_is_a_config_error_naming_its_path(receiver):
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.disable_on_gone"):
        eventisc.create_app(listeners=[http(receiver.url, disable_on_gone="yes")])
