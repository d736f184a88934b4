"""The circuit breaker of background listeners: its states (pure logic, a fake clock) and a
receiver that stops answering, then answers again (a real HTTP server)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import eventisc
from eventisc import CircuitOpenError, ConfigError, ConnectError, DeliveryTimeout, HTTPStatusError
from eventisc.delivery.breaker import CircuitBreaker

from . import kinds  # noqa: F401  (registers the test kinds)
from .faults import dead_url
from .receiver import Response
from .support import Clock


def refused() -> ConnectError:
    return ConnectError("POST http://127.0.0.1:9/x: connection refused")


def test_opens_after_failures_in_a_row_then_fails_at_once():
    clock = Clock(100.0)
    breaker = CircuitBreaker("hook", failures=3, reset_after=2.0, clock=clock)
    for _ in range(2):
        assert breaker.check() is None
        breaker.record(refused())
    assert breaker.state == "closed"
    assert breaker.check() is None
    breaker.record(DeliveryTimeout("no answer within 1 s"))  # a timeout counts too
    assert breaker.state == "open" and breaker.opened == 1
    error = breaker.check()
    assert isinstance(error, CircuitOpenError) and isinstance(error, ConnectError)
    assert error.transient and error.listener == "hook"
    assert "3 attempts in a row could not reach the receiver" in str(error)
    assert "no answer within 1 s" in str(error) and "in 2.0 s" in str(error)


def test_an_answer_of_any_kind_resets_the_count():
    breaker = CircuitBreaker("hook", failures=2, reset_after=1.0, clock=Clock(100.0))
    breaker.record(refused())
    breaker.record(HTTPStatusError("HTTP 503", status=503))  # reachable: not "down"
    breaker.record(refused())
    assert breaker.state == "closed"
    breaker.record(None)
    breaker.record(refused())
    assert breaker.state == "closed" and breaker.snapshot()["failures_in_a_row"] == 1


def test_after_reset_after_one_probe_goes_and_decides():
    clock = Clock(100.0)
    breaker = CircuitBreaker("hook", failures=1, reset_after=2.0, clock=clock)
    breaker.record(refused())
    clock.now += 1.9
    assert breaker.check() is not None
    clock.now += 0.2
    assert breaker.state == "half-open"
    assert breaker.check() is None  # the probe
    assert isinstance(breaker.check(), CircuitOpenError)  # the others wait for its outcome
    breaker.record(refused())  # the probe failed: open again, not counted as a new opening
    assert breaker.state == "open" and breaker.opened == 1
    clock.now += 2.1
    assert breaker.check() is None
    breaker.record(None)  # the probe was delivered
    assert breaker.state == "closed" and breaker.check() is None
    assert breaker.snapshot() == {"state": "closed", "opened": 1, "failures_in_a_row": 0}


def test_a_receiver_that_stops_answering_is_left_alone_then_tried_again(receiver, caplog):
    receiver.default = Response(delay=1.0)  # slower than the listener's timeout
    app = eventisc.create_app(
        listeners=[
            {"kind": "http", "name": "hook", "event_name": "e", "url": receiver.url,
             "data": "{event_data}", "timeout": 0.1, "retry": {"max_attempts": 1}}
        ],
        delivery="background",
        dispatcher={"max_workers": 1, "breaker_failures": 3, "breaker_reset": 0.5},
    )  # fmt: skip
    reports = [app.dispatch("e", {"n": n}) for n in range(30)]
    assert all(report.wait(20) for report in reports)
    errors = [type(report.deliveries[0].error) for report in reports]
    assert errors[:3] == [DeliveryTimeout] * 3
    # Once open, the rest fail at once, apart from a probe every 0.5 s at the most.
    held_back = errors.count(CircuitOpenError)
    assert held_back >= 30 - 3 - 2, errors
    assert len(receiver.requests) == 30 - held_back
    assert "3 attempts in a row could not reach the receiver" in caplog.text
    circuit = app.stats()["listeners"]["hook"]["circuit"]
    assert circuit["opened"] == 1 and circuit["state"] in ("open", "half-open")
    registry = CollectorRegistry()
    app.register_prometheus(registry)
    exported = generate_latest(registry).decode()
    assert 'eventisc_circuit_open{app="eventisc",listener="hook"} 1.0' in exported
    assert 'eventisc_circuit_opened_total{app="eventisc",listener="hook"} 1.0' in exported

    receiver.default = Response()  # answering again
    time.sleep(0.6)
    report = app.dispatch("e", {"n": 30})  # the probe
    assert report.wait(10) and report.ok
    assert app.trigger("e", {"n": 31}) == 1
    assert app.flush(10)
    assert app.stats()["listeners"]["hook"]["circuit"]["state"] == "closed"
    assert [r.json for r in receiver.requests[-2:]] == [{"n": 30}, {"n": 31}]
    app.close()


def test_breaker_failures_0_turns_it_off():
    dead = dead_url()
    app = eventisc.create_app(
        listeners=[{"kind": "http", "name": "hook", "event_name": "e", "url": dead}],
        delivery="background",
        retry={"max_attempts": 1},
        dispatcher={"breaker_failures": 0},
    )
    reports = [app.dispatch("e") for _ in range(8)]
    assert all(r.wait(10) for r in reports)
    assert {type(r.deliveries[0].error) for r in reports} == {ConnectError}
    assert "circuit" not in app.stats()["listeners"]["hook"]
    app.close()


def test_sync_listeners_have_no_breaker():
    app = eventisc.create_app(listeners=[{"kind": "recording", "event_name": "e"}])
    assert "circuit" not in app.stats()["listeners"]["recording:e"]


@pytest.mark.parametrize(
    ("dispatcher", "message"),
    [
        ({"breaker_failures": -1}, "-1 is less than the minimum of 0"),
        ({"breaker_reset": -0.5}, "-0.5 is less than the minimum of 0"),
        ({"breaker_failures": "5"}, "'5' is not of type 'integer'"),
    ],
)
def test_bad_breaker_settings_are_config_errors(dispatcher, message):
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[], delivery="background", dispatcher=dispatcher)
    assert message in str(info.value)
    assert "dispatcher.breaker_" in str(info.value)
