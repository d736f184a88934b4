"""Retry policies: the arithmetic, which failures are retried, and inline retries over HTTP."""

from __future__ import annotations

import time

import pytest

import eventisc
from eventisc import ConfigError, ConnectError, DeliveryTimeout, HTTPStatusError, TemplateError
from eventisc.errors import Rejected
from eventisc.settings import DEFAULT_BACKGROUND, DEFAULT_SYNC, RetryPolicy, failure_class

from .receiver import Response


def status(code, retry_after=None):
    return HTTPStatusError("x", status=code, retry_after=retry_after)


def test_exponential_backoff_capped_without_jitter():
    policy = RetryPolicy(backoff_factor=0.5, max_backoff=3, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]


def test_jitter_spreads_the_wait_within_bounds():
    policy = RetryPolicy(backoff_factor=1, jitter=0.2)
    waits = {policy.delay(1) for _ in range(200)}
    assert len(waits) > 10
    assert all(0.8 <= w <= 1.2 for w in waits)


def test_retry_after_replaces_the_backoff_and_is_capped():
    policy = RetryPolicy(backoff_factor=0.1, max_backoff=5, jitter=0)
    assert policy.delay(1, status(503, retry_after=2)) == 2
    assert policy.delay(1, status(503, retry_after=3600)) == 5


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (ConnectError("x"), "connect"),
        (ConnectionRefusedError(), "connect"),
        (DeliveryTimeout("x"), "timeout"),
        (TimeoutError(), "timeout"),
        (status(503), "503"),
        (Rejected("nack"), "rejected"),
        (RuntimeError("custom kind"), "error"),
        (TemplateError("no key"), None),
    ],
)
def test_failure_classes(exc, name):
    assert failure_class(exc) == name


def test_default_retry_on_is_connect_timeout_5xx_and_429():
    policy = RetryPolicy()
    for exc in (ConnectError("x"), DeliveryTimeout("x"), status(500), status(503), status(429)):
        assert policy.retries(exc), exc
    for exc in (status(400), status(404), Rejected("x"), TemplateError("x"), RuntimeError()):
        assert not policy.retries(exc), exc


def test_retry_on_by_class_and_by_code():
    policy = RetryPolicy(retry_on=["4xx", 503, "rejected"])
    assert policy.retries(status(404)) and policy.retries(status(503))
    assert not policy.retries(status(500)) and not policy.retries(ConnectError("x"))
    assert policy.retries(Rejected("x"))


def test_max_attempts_counts_the_first_one():
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(ConnectError("x"), 1)
    assert policy.should_retry(ConnectError("x"), 2)
    assert not policy.should_retry(ConnectError("x"), 3)
    assert not DEFAULT_SYNC.should_retry(ConnectError("x"), 1)
    assert DEFAULT_BACKGROUND.max_attempts == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"jitter": 2}, "jitter"),
        ({"retry_on": ["sometimes"]}, "unknown failure 'sometimes'"),
        ({"backof_factor": 1}, "backof_factor"),
    ],
)
def test_bad_policies_are_config_errors(options, message):
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(
            listeners=[{"kind": "http", "event_name": "e", "url": "http://x/", "retry": options}]
        )
    assert info.value.path.startswith("listeners[0].retry")
    assert message in str(info.value)


def http_app(receiver, retry, **options):
    return eventisc.create_app(
        listeners=[
            {"kind": "http", "event_name": "e", "url": receiver.url + "/hook", "retry": retry}
        ],
        **options,
    )


def test_503_twice_then_200_is_delivered_on_attempt_3_after_the_backoff(receiver):
    receiver.respond(Response(503), Response(503), Response(200))
    app = http_app(receiver, {"max_attempts": 5, "backoff_factor": 0.2, "jitter": 0})
    report = app.dispatch("e", {"n": 1})
    (delivery,) = report
    assert delivery.status == "delivered" and delivery.attempts == 3
    arrivals = [r.received for r in receiver.wait_for(3)]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    # The waits were 0.2 s then 0.4 s: each gap at least that, and not far above.
    assert 0.2 <= gaps[0] < 0.4 and 0.4 <= gaps[1] < 0.7, gaps
    assert app.trigger("e") == 1


def test_400_is_not_retried(receiver, caplog):
    receiver.respond(Response(400, b"bad request"))
    app = http_app(receiver, {"max_attempts": 5, "backoff_factor": 0})
    (delivery,) = app.dispatch("e")
    assert delivery.status == "failed" and delivery.attempts == 1
    assert isinstance(delivery.error, HTTPStatusError) and delivery.error.status == 400
    assert len(receiver.requests) == 1


def test_retry_after_is_honoured(receiver):
    receiver.respond(Response(429, headers={"Retry-After": "1"}), Response(200))
    app = http_app(receiver, {"max_attempts": 2, "backoff_factor": 0.01, "jitter": 0})
    start = time.monotonic()
    (delivery,) = app.dispatch("e")
    assert delivery.status == "delivered" and delivery.attempts == 2
    first, second = receiver.wait_for(2)
    assert second.received - first.received >= 0.95
    assert time.monotonic() - start < 5


def test_sync_default_is_one_attempt(receiver):
    receiver.respond(Response(503), Response(200))
    app = eventisc.create_app(
        listeners=[{"kind": "http", "event_name": "e", "url": receiver.url + "/hook"}]
    )
    assert app.trigger("e") == 0
    assert len(receiver.requests) == 1


def test_app_wide_retry_applies_to_every_listener_unless_it_has_its_own(receiver):
    receiver.respond(Response(503), Response(503), Response(503))
    app = eventisc.create_app(
        listeners=[
            {"kind": "http", "event_name": "e", "url": receiver.url + "/a"},
            {
                "kind": "http",
                "event_name": "e",
                "url": receiver.url + "/b",
                "retry": {"max_attempts": 1},
            },
        ],
        retry=RetryPolicy(max_attempts=2, backoff_factor=0),
    )
    report = app.dispatch("e")
    assert [d.attempts for d in report] == [2, 1]
    assert [d.status for d in report] == ["failed", "failed"]
