"""The delivery layers, as pure logic: fake listeners, a fake clock, no sleeps, no network.

A route's attempts go through its layers (breaker, retries, spool, recording); these tests
compose them as an app does (:class:`eventisc.delivery.Deliverer`) and drive attempts by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

import eventisc
from eventisc import ConnectError, Notification, Rejected, StaleConnection
from eventisc.delivery import Deliverer, Hooks
from eventisc.delivery import steps as steps_module
from eventisc.delivery.breaker import BreakerLayer, CircuitBreaker
from eventisc.delivery.outcomes import FINAL, Failure, RetryAfter, Sent
from eventisc.delivery.recording import Recorder, RecordLayer
from eventisc.delivery.retrying import RetryLayer
from eventisc.delivery.sender import Sender
from eventisc.errors import CircuitOpenError
from eventisc.metrics import ListenerMetrics
from eventisc.report import Delivery
from eventisc.settings import DispatcherSettings, Plan, RetryPolicy
from eventisc.spool import Spool


class Scripted(eventisc.Listener):
    """Answers each delivery with the next scripted outcome: an exception to raise, or a
    value to return."""

    kind = "scripted"

    def __init__(self, event_name="e", script=(), **common: Any):
        super().__init__(event_name, **common)
        self.script = list(script)
        self.sent: list[Notification] = []

    def deliver(self, notification: Notification) -> Any:
        self.sent.append(notification)
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def notification() -> Notification:
    return Notification("scripted:e", "scripted", "e", {"event_data": {"n": 1}})


def delivery_for(sender: Sender) -> Delivery:
    delivery = Delivery(sender.listener, notification())
    delivery.sender = sender
    return delivery


def sender(listener: Scripted, *layers: Any, hooks: Hooks | None = None) -> Sender:
    recorder = Recorder(listener, ListenerMetrics(), hooks or Hooks())
    return Sender(listener, [*layers, RecordLayer(recorder)], recorder)


NO_JITTER = {"jitter": 0.0, "backoff_factor": 1.0}


# -- retries ------------------------------------------------------------------------------------


def test_a_retried_failure_waits_as_the_policy_says_then_gives_up():
    listener = Scripted(script=[ConnectError("down"), ConnectError("down"), ConnectError("down")])
    metrics = ListenerMetrics()
    policy = RetryPolicy(max_attempts=3, **NO_JITTER)
    recorder = Recorder(listener, metrics, Hooks())
    s = Sender(listener, [RetryLayer(policy, metrics), RecordLayer(recorder)], recorder)
    d = delivery_for(s)
    outcomes = [s.attempt(d), s.attempt(d), s.attempt(d)]
    assert [type(o) for o in outcomes[:2]] == [RetryAfter, RetryAfter]
    assert [o.delay for o in outcomes[:2]] == [1.0, 2.0]  # backoff_factor * 2 ** (n - 1)
    assert outcomes[2] is FINAL
    assert (d.status, d.attempts, str(d.error)) == ("failed", 3, "listener 'scripted:e': down")
    snap = metrics.snapshot()
    assert (snap["retried"], snap["failed"], snap["delivered"]) == (2, 1, 0)


def test_a_failure_the_policy_does_not_retry_is_final_at_once():
    listener = Scripted(script=[Rejected("no")])
    metrics = ListenerMetrics()
    recorder = Recorder(listener, metrics, Hooks())
    policy = RetryPolicy(max_attempts=5)
    s = Sender(listener, [RetryLayer(policy, metrics), RecordLayer(recorder)], recorder)
    d = delivery_for(s)
    assert s.attempt(d) is FINAL
    assert (d.status, d.attempts) == ("failed", 1)
    assert metrics.snapshot()["retried"] == 0


def test_declined_is_skipped_and_delivered_runs_the_hooks():
    hooks = Hooks()
    seen: list[str] = []
    hooks.add("delivered", lambda d: seen.append(d.status))
    declining = Scripted(script=[False])
    s = sender(declining, hooks=hooks)
    d = delivery_for(s)
    assert s.attempt(d) is FINAL and (d.status, d.detail) == ("skipped", "declined by the listener")
    assert seen == []
    s2 = sender(Scripted(script=["HTTP 200"]), hooks=hooks)
    d2 = delivery_for(s2)
    s2.attempt(d2)
    assert (d2.status, d2.detail, seen) == ("delivered", "HTTP 200", ["delivered"])


# -- the circuit breaker ------------------------------------------------------------------------


def test_the_breaker_holds_attempts_back_then_lets_one_probe_through():
    clock = Clock()
    breaker = CircuitBreaker("scripted:e", failures=2, reset_after=5.0, clock=clock)
    listener = Scripted(script=[ConnectError("refused")] * 2 + ["ok"])
    s = sender(listener, BreakerLayer(breaker))
    for _ in range(2):
        s.attempt(delivery_for(s))
    assert breaker.state == "open" and len(listener.sent) == 2
    # While open: failed at once, nothing sent, and the held-back failure is not counted.
    held = delivery_for(s)
    s.attempt(held)
    assert isinstance(held.error, CircuitOpenError) and len(listener.sent) == 2
    assert breaker.snapshot()["failures_in_a_row"] == 2
    # After reset_after: one probe goes through; its answer closes the breaker.
    clock.now += 5.0
    probe = delivery_for(s)
    s.attempt(probe)
    assert probe.status == "delivered" and breaker.state == "closed"


# -- the spool ----------------------------------------------------------------------------------


def test_a_final_failure_is_kept_in_the_spool_and_a_delivered_durable_entry_removed(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite3")
    deliverer = Deliverer(spool=spool, settings=DispatcherSettings(), background=False)
    listener = Scripted(script=[Rejected("refused"), "ok"])
    plan = Plan(background=False, policy=RetryPolicy(max_attempts=1))
    wiring = deliverer.wire(listener, plan, ListenerMetrics())
    assert wiring.sender is not None  # a spool: not the direct step
    failed = delivery_for(wiring.sender)
    wiring.sender.attempt(failed)
    assert failed.status == "spooled"
    [entry] = spool.entries(state="dead")
    assert entry.error == "Rejected: listener 'scripted:e': refused"
    durable = delivery_for(wiring.sender)
    durable.spool_id = spool.add(durable.notification, state="pending", reason="durable")
    wiring.sender.attempt(durable)
    assert durable.status == "delivered" and spool.count(state="pending") == 0


# -- steps ---------------------------------------------------------------------------------------


def test_the_inline_step_waits_between_attempts_without_holding_a_worker(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(steps_module.time, "sleep", waits.append)  # the fake clock
    deliverer = Deliverer(spool=None, settings=DispatcherSettings(), background=False)
    listener = Scripted(script=[ConnectError("down"), ConnectError("down"), "ok"])
    plan = Plan(background=False, policy=RetryPolicy(max_attempts=3, **NO_JITTER))
    wiring = deliverer.wire(listener, plan, ListenerMetrics())
    sink: list[Delivery] = []
    assert wiring.send(notification(), 0.0, sink) is True
    assert waits == [1.0, 2.0]
    assert (sink[0].status, sink[0].attempts) == ("delivered", 3)


def test_one_attempt_without_spool_or_hooks_takes_the_direct_step():
    deliverer = Deliverer(spool=None, settings=DispatcherSettings(), background=False)
    plan = Plan(background=False, policy=RetryPolicy(max_attempts=1))
    wiring = deliverer.wire(Scripted(), plan, ListenerMetrics())
    assert wiring.sender is None  # no layers, no Delivery kept: the fast path
    deliverer.hooks.add("failed", lambda d: None)
    assert deliverer.wire(Scripted(), plan, ListenerMetrics()).sender is not None


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "through the layers"])
def test_a_stale_connection_is_sent_again_at_once_not_counted_as_an_attempt(direct):
    deliverer = Deliverer(spool=None, settings=DispatcherSettings(), background=False)
    if not direct:
        deliverer.hooks.add("failed", lambda d: None)
    policy = RetryPolicy(max_attempts=1)
    listener = Scripted(script=[StaleConnection("pooled connection dead"), "ok"])
    wiring = deliverer.wire(listener, Plan(background=False, policy=policy), ListenerMetrics())
    sink: list[Delivery] = []
    assert wiring.send(notification(), 0.0, sink) is True
    assert len(listener.sent) == 2 and (sink[0].status, sink[0].attempts) == ("delivered", 1)
    # Twice stale: the second is the attempt's failure.
    twice = Scripted(script=[StaleConnection("dead"), StaleConnection("dead again")])
    wiring = deliverer.wire(twice, Plan(background=False, policy=policy), ListenerMetrics())
    if direct:
        with pytest.raises(StaleConnection, match="dead again"):
            wiring.send(notification(), 0.0, None)
    else:
        assert isinstance(wiring.send(notification(), 0.0, None), StaleConnection)
    assert len(twice.sent) == 2


def test_results_hold_what_the_layers_pass_on():
    error = ConnectError("x")
    assert Failure(error).status == "failed" and Failure(error, "spooled").status == "spooled"
    assert Sent(False).detail is False
    assert "RetryAfter(1.5)" == repr(RetryAfter(1.5))


def test_the_log_says_where_a_notification_given_up_on_went():
    from eventisc.delivery.recording import fate
    from eventisc.errors import OutboxError

    listener = Scripted()
    kept = Delivery(listener, notification(), spool_id=3)
    assert fate(kept, ConnectError("refused")) == "dead in the spool as #3"
    assert fate(Delivery(listener, notification()), ConnectError("refused")) == "dropped"
    assert fate(None, RuntimeError("a bug")) == "dropped"
    # An outbox that could not be written: the caller's transaction got the error itself.
    assert fate(Delivery(listener, notification()), OutboxError("no table")) is None
