"""The http kind's bounds on one attempt, on real connections: the total deadline (a receiver
trickling its answer through tests/faults.py's relay, a stalled one, a slow body) and the
bytes of an answer read at most."""

from __future__ import annotations

import logging
import time

import pytest

import eventisc
from eventisc import ConfigError, DeliveryTimeout, HTTPStatusError
from eventisc.listeners.http import HttpListener

from .faults import FaultRelay
from .receiver import Response
from .support import failure, http

#: Every test runs on both clients: urllib3 (the usual path) and requests.
pytestmark = pytest.mark.usefixtures("http_client")

#: Scheduling slack on a noisy VM, in seconds.
SLACK = 2.0


@pytest.fixture
def trickle(receiver):
    """The receiver behind a relay that passes its answers on one byte every 0.05 s."""
    relay = FaultRelay(upstream=("127.0.0.1", receiver.port), mode="trickle", trickle_delay=0.05)
    yield relay
    relay.close()


# -- the deadline --------------------------------------------------------------------------------


def test_a_trickling_receiver_is_cut_at_the_deadline(receiver, trickle):
    # Given a receiver whose answer (~150 bytes) trickles for over 7 s, every byte well
    # within the 5 s read timeout
    app = eventisc.create_app(
        listeners=[http(f"http://{trickle.address}/hook", timeout=5, deadline=1)],
        raise_errors=True,
    )
    # When an event is triggered
    start = time.monotonic()
    exc = failure(app, "e")
    elapsed = time.monotonic() - start
    # Then the trigger gets a transient DeliveryTimeout at the deadline, not minutes later
    assert isinstance(exc, DeliveryTimeout) and exc.transient
    assert f"POST http://{trickle.address}/hook: did not finish within 1 s" in str(exc)
    assert 0.9 <= elapsed < 1 + SLACK
    assert len(receiver.requests) == 1  # the request itself went through


def test_the_default_deadline_is_three_read_timeouts(receiver, trickle):
    listener = HttpListener("e", f"http://{trickle.address}/hook", timeout=0.4)
    assert listener.deadline == pytest.approx(1.2)
    start = time.monotonic()
    with pytest.raises(DeliveryTimeout, match="did not finish within 1.2 s"):
        listener.notify("e", {})
    assert time.monotonic() - start < 1.2 + SLACK


def test_the_default_deadline_leaves_room_to_connect_and_read():
    assert HttpListener("e", "http://h/").deadline == 30.0
    assert HttpListener("e", "http://h/", timeout=[3, 10]).deadline == 30.0
    assert HttpListener("e", "http://h/", timeout=[20, 2]).deadline == 22.0
    assert HttpListener("e", "http://h/", timeout=[20, 2], deadline=5).deadline == 5.0


def test_a_stalled_receiver_is_cut_at_the_deadline_before_the_read_timeout(receiver):
    # Given a peer that accepts the connection and never answers
    with FaultRelay(upstream=("127.0.0.1", receiver.port), mode="stall") as relay:
        listener = HttpListener("e", f"http://{relay.address}/", timeout=5, deadline=0.5)
        start = time.monotonic()
        with pytest.raises(DeliveryTimeout, match="did not finish within 0.5 s"):
            listener.notify("e", {})
        assert time.monotonic() - start < 0.5 + SLACK


def test_a_tls_handshake_that_never_completes_is_cut_at_the_deadline(receiver):
    # The peer accepts TCP and never speaks TLS: connecting is what the deadline cuts.
    with FaultRelay(upstream=("127.0.0.1", receiver.port), mode="stall") as relay:
        listener = HttpListener("e", f"https://{relay.address}/", timeout=5, deadline=0.5)
        start = time.monotonic()
        with pytest.raises(DeliveryTimeout, match="did not finish within 0.5 s"):
            listener.notify("e", {})
        assert time.monotonic() - start < 0.5 + SLACK


def test_sending_to_a_peer_that_does_not_read_is_cut_at_the_deadline(receiver):
    # Given a peer that never reads, and a body far larger than the sockets' buffers
    with FaultRelay(upstream=("127.0.0.1", receiver.port), mode="stall") as relay:
        listener = HttpListener(
            "e", f"http://{relay.address}/", data="{event_data}", timeout=5, deadline=0.5
        )
        notification = listener.render("e", "x" * 64 * 1024 * 1024)
        start = time.monotonic()
        with pytest.raises(DeliveryTimeout, match="did not finish within 0.5 s"):
            listener.deliver(notification)
        assert time.monotonic() - start < 0.5 + SLACK


def test_a_body_slower_than_the_deadline_is_cut_and_the_status_decides(receiver, caplog):
    # Given a receiver that answers 200 at once, then trickles a 1,000 byte body
    receiver.respond(Response(200, b"x" * 1000, trickle=0.01), Response(200, b"ok"))
    listener = HttpListener("e", receiver.url + "/slow-body", timeout=5, deadline=1)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        # Then the delivery counts (the receiver said 200; sending again would duplicate it)
        assert listener.deliver(listener.render("e", {})) == "HTTP 200"
    assert time.monotonic() - start < 1 + SLACK
    assert "/slow-body: did not finish within 1 s" in caplog.text
    assert "while reading the body of an HTTP 200 answer (the status stands)" in caplog.text
    # and the half-read connection is not reused.
    assert listener.notify("e", {}) is True
    first, second = receiver.wait_for(2)
    assert first.client != second.client


def test_each_attempt_gets_its_own_deadline(receiver):
    receiver.respond(*[Response(delay=0.3)] * 3)
    listener = HttpListener("e", receiver.url, timeout=5, deadline=0.8)
    for _ in range(3):
        assert listener.notify("e", {}) is True


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), 1e300, "5", True])
def test_a_bad_deadline_is_a_config_error(value):
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/", deadline=value)
    assert info.value.path == "deadline"


# -- the bytes of an answer ----------------------------------------------------------------------


def test_a_huge_successful_answer_is_delivered_without_being_read(receiver):
    # Given a receiver answering 200 with a 64 MiB body
    chunk = b"x" * 65536
    receiver.respond(Response(200, chunk, repeat=1024))
    app = eventisc.create_app(listeners=[http(receiver.url)], raise_errors=True)
    # When an event is triggered
    start = time.monotonic()
    assert app.trigger("e") == 1
    # Then it is delivered (the status decides) without reading the body: the connection
    # was dropped after 1 MiB, and the receiver could not write the rest
    assert time.monotonic() - start < SLACK
    (sent,) = receiver.wait_sent(1)
    assert sent < 1024 * len(chunk) // 2
    assert app.trigger("e") == 1
    first, second = receiver.wait_for(2)
    assert first.client != second.client


def test_a_huge_failing_answer_is_reported_from_its_start(receiver):
    receiver.respond(Response(503, b"down " + b"x" * 65536, repeat=1024))
    listener = HttpListener("e", receiver.url, max_response_bytes=1000)
    with pytest.raises(HTTPStatusError) as info:
        listener.notify("e", {})
    assert info.value.status == 503 and info.value.body.startswith("down xxx")


def test_an_answer_within_max_response_bytes_keeps_its_connection(receiver):
    # 256 KiB: more than was read before (64 KiB), less than the default 1 MiB
    receiver.respond(Response(200, b"y" * 256 * 1024), Response(200))
    listener = HttpListener("e", receiver.url)
    assert listener.notify("e", {}) is True
    assert listener.notify("e", {}) is True
    first, second = receiver.wait_for(2)
    assert first.client == second.client


def test_an_answer_over_max_response_bytes_drops_its_connection(receiver):
    receiver.respond(Response(200, b"y" * 5000), Response(200))
    listener = HttpListener("e", receiver.url, max_response_bytes=4096)
    assert listener.notify("e", {}) is True
    assert listener.notify("e", {}) is True
    first, second = receiver.wait_for(2)
    assert first.client != second.client


def test_an_answer_of_exactly_max_response_bytes_keeps_its_connection(receiver):
    receiver.respond(Response(200, b"y" * 4096), Response(200))
    listener = HttpListener("e", receiver.url, max_response_bytes=4096)
    assert listener.notify("e", {}) is True
    assert listener.notify("e", {}) is True
    first, second = receiver.wait_for(2)
    assert first.client == second.client


@pytest.mark.parametrize("value", [-1, 1.5, "1MB", True])
def test_a_bad_max_response_bytes_is_a_config_error(value):
    with pytest.raises(ConfigError) as info:
        HttpListener("e", "http://h/", max_response_bytes=value)
    assert info.value.path == "max_response_bytes"
