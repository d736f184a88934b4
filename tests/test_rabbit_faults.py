"""The rabbit kind against a broker that accepts TCP and never completes the handshake.

A :class:`tests.faults.FaultRelay` in ``stall`` mode stands in front of the real RabbitMQ: it
accepts each connection and forwards nothing, like a hung broker or a proxy whose backend is
gone. Setting it back to ``forward`` heals the fault. pika itself is never patched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from eventisc import App
from eventisc.errors import ConnectError, TriggerError
from eventisc.listeners.rabbit import RabbitListener
from eventisc.report import Delivery
from eventisc.spool import Spool

from .amqp import Broker, rabbit_relay, relay_url
from .faults import FaultRelay
from .support import wait_for

#: Seconds a connect may take before it counts as failed: short, so the tests stay fast.
TIMEOUT = 1


@pytest.fixture
def stalled(broker: Broker) -> Iterator[FaultRelay]:
    """A relay to the test RabbitMQ that stalls every connection until a test heals it."""
    relay = rabbit_relay(mode="stall")
    yield relay
    relay.close()


def rabbit(url: str, queue: str, **options: Any) -> dict[str, Any]:
    return {
        "kind": "rabbit",
        "event_name": "e",
        "url": url,
        "queue_kwargs": {"queue": {"queue": queue}},
        "timeout": TIMEOUT,
        **options,
    }


# -- sync delivery (and `eventisc spool replay`, which calls deliver) ------------------------


@pytest.mark.parametrize("scheme, phase", [("amqp", "AMQP"), ("amqps", "TLS")])
def test_a_stalled_handshake_is_a_connect_error_and_retried(
    broker: Broker, stalled: FaultRelay, scheme: str, phase: str
) -> None:
    url = relay_url(stalled).replace("amqp://", f"{scheme}://")
    listener = rabbit(url, broker.name(), retry={"max_attempts": 2, "backoff_factor": 0})
    app = App("", [listener], raise_errors=True)
    with app, pytest.raises(TriggerError) as info:
        app.trigger("e", {})
    [(_, error)] = info.value.failures
    assert isinstance(error, ConnectError) and error.transient, repr(error)
    assert f"did not complete the {phase} handshake within {TIMEOUT}s" in str(error)
    assert stalled.address in str(error)
    assert stalled.accepted == 2  # retried: one connection per attempt


# -- background delivery ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"pipeline": False}, {"confirm": False}, {}],
    ids=["pipeline-false", "confirm-false", "pipelined"],
)
def test_messages_sent_during_a_stalled_handshake_arrive_once_it_heals(
    broker: Broker, stalled: FaultRelay, tmp_path: Any, options: dict[str, Any]
) -> None:
    queue = broker.name()
    spool_path = str(tmp_path / "spool.db")
    app = App(
        "",
        [rabbit(relay_url(stalled), queue, **options)],
        delivery="background",
        retry={"max_attempts": 50, "backoff_factor": 0.1, "max_backoff": 0.5},
        spool={"path": spool_path},
    )
    try:
        # Given 20 messages whose first attempts hit the stalled handshake...
        deliveries: list[Delivery] = [d for i in range(20) for d in app.dispatch("e", {"n": i})]
        wait_for(lambda: all(d.attempts >= 2 or d.done for d in deliveries), 15)
        # ...they wait for another attempt rather than going dead to the spool.
        assert [d for d in deliveries if d.done] == []
        # When the link heals, every one of them is delivered.
        stalled.mode = "forward"
        assert app.flush(30)
        assert {d.status for d in deliveries} == {"delivered"}, [
            (d.status, d.error) for d in deliveries if d.status != "delivered"
        ]
    finally:
        stalled.mode = "forward"
        app.close()
    assert Spool(spool_path).entries() == []
    bodies = [json.loads(body)["n"] for _, _, body in broker.get(queue, 20)]
    assert sorted(bodies) == list(range(20))


def test_the_pipelined_publisher_treats_a_stalled_tls_handshake_as_transient(
    broker: Broker, stalled: FaultRelay
) -> None:
    # The pipelined publisher's SelectConnection reports this connect failure wrapped in
    # pika's connection-workflow errors, unlike BlockingConnection.
    url = relay_url(stalled).replace("amqp://", "amqps://")
    listener = RabbitListener("e", url, queue_kwargs={"queue": {"queue": broker.name()}}, timeout=1)
    outcome: list[tuple[Any, Any]] = []
    try:
        listener.deliver_async(listener.render("e", {}), lambda *args: outcome.append(args))
        wait_for(lambda: outcome != [], 10)
    finally:
        listener.close()
    [(detail, error)] = outcome
    assert detail is None and isinstance(error, ConnectError), repr(error)
    assert f"did not complete the TLS handshake within {TIMEOUT}s" in str(error)
