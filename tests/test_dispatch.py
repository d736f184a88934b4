"""Background delivery against a real HTTP receiver: latency, scaling, full queues, shutdown."""

from __future__ import annotations

import gc
import logging
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

import pytest

import eventisc
from eventisc import QueueFull
from eventisc.report import Delivery

from . import kinds  # noqa: F401  (registers the test kinds)
from .faults import dead_url
from .receiver import Receiver, Response

ROOT = Path(__file__).resolve().parent.parent


def background_app(url, *, dispatcher=None, retry=None, **options):
    listener = {"kind": "http", "event_name": "e", "url": url, "data": "{event_data}"}
    if retry is not None:
        listener["retry"] = retry
    return eventisc.create_app(
        listeners=[listener], delivery="background", dispatcher=dispatcher or {}, **options
    )


def test_trigger_returns_at_once_while_the_receiver_takes_a_second(receiver):
    delay = 1.0
    receiver.default = Response(delay=delay)
    app = background_app(receiver.url, dispatcher={"max_workers": 8})
    durations = []
    for i in range(20):
        start = time.perf_counter()
        assert app.trigger("e", {"i": i}) == 1
        durations.append(time.perf_counter() - start)
    # Given a receiver taking 1 s, trigger() costs a tiny fraction of it.
    assert statistics.median(durations) / delay < 1 / 1000, durations
    assert max(durations) / delay < 1 / 20, durations
    assert app.flush(30)
    assert sorted(r.json["i"] for r in receiver.requests) == list(range(20))
    app.close()


def test_workers_scale_up_under_a_burst_and_back_down_after(receiver):
    receiver.default = Response(delay=0.3)
    settings = {
        "min_workers": 1,
        "max_workers": 6,
        "monitor_interval": 0.02,
        "idle_timeout": 0.3,
        "thread_name_prefix": "hooks",
    }
    app = background_app(receiver.url, dispatcher=settings)
    dispatcher = app._deliverer.dispatcher
    for i in range(30):
        app.trigger("e", {"i": i})
    time.sleep(0.3)
    assert dispatcher.stats()["workers"] == 6
    names = {t.name for t in threading.enumerate() if t.name.startswith("hooks-")}
    assert "hooks-monitor" in names and len(names) >= 7
    assert app.flush(30)
    assert len(receiver.requests) == 30
    deadline = time.monotonic() + 5
    while dispatcher.stats()["workers"] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dispatcher.stats()["workers"] == 1
    assert dispatcher.peak_workers == 6
    app.close()


def test_a_burst_gets_its_workers_at_once_not_at_the_next_monitor_round(receiver):
    receiver.default = Response(delay=0.5)
    # Given a monitor whose rounds are far apart
    settings = {"min_workers": 1, "max_workers": 4, "monitor_interval": 30}
    app = background_app(receiver.url, dispatcher=settings)
    dispatcher = app._deliverer.dispatcher
    # When a burst finds no idle worker
    start = time.monotonic()
    for i in range(4):
        app.trigger("e", {"i": i})
    # Then the workers start now: the four take 0.5 s side by side, not 2 s one by one
    assert app.flush(1.5)
    assert time.monotonic() - start < 1.5
    assert dispatcher.peak_workers == 4
    app.close()


def test_one_delivery_at_a_time_keeps_one_worker(receiver):
    app = background_app(receiver.url, dispatcher={"max_workers": 8, "monitor_interval": 0.02})
    dispatcher = app._deliverer.dispatcher
    for i in range(10):
        app.trigger("e", {"i": i})
        assert app.flush(5)
        time.sleep(0.01)
    # An idle worker took each one: no more were started
    assert dispatcher.peak_workers == 1
    assert len(receiver.requests) == 10
    app.close()


def test_a_retry_waits_without_holding_a_worker():
    failing, healthy = Receiver(), Receiver()
    try:
        failing.respond(Response(503), Response(200))
        app = eventisc.create_app(
            listeners=[
                {
                    "kind": "http",
                    "event_name": "a",
                    "url": failing.url,
                    "retry": {"backoff_factor": 0.5, "jitter": 0},
                },
                {"kind": "http", "event_name": "b", "url": healthy.url},
            ],
            delivery="background",
            dispatcher={"min_workers": 1, "max_workers": 1},
        )
        report = app.dispatch("a")
        failing.wait_for(1)
        for _ in range(3):
            app.trigger("b")
        healthy.wait_for(3)
        assert report.wait(5)
        (delivery,) = report
        assert delivery.status == "delivered" and delivery.attempts == 2
        # The single worker delivered b while a waited for its retry.
        retried = failing.wait_for(2)[1]  # the receiver records a request after answering it
        assert healthy.wait_for(3)[-1].received < retried.received
        app.close()
    finally:
        failing.close()
        healthy.close()


def test_lower_priority_numbers_go_first(receiver):
    receiver.respond(Response(delay=0.3))  # keeps the only worker busy while the queue fills
    app = eventisc.create_app(
        listeners=[
            {"kind": "http", "event_name": "slow", "url": receiver.url + "/slow"},
            {"kind": "http", "event_name": "low", "url": receiver.url + "/low", "priority": 10},
            {"kind": "http", "event_name": "high", "url": receiver.url + "/high", "priority": 1},
        ],
        delivery="background",
        dispatcher={"min_workers": 1, "max_workers": 1},
    )
    app.trigger("slow")
    time.sleep(0.1)  # the worker is now inside the slow request
    for name in ("low", "low", "high", "high"):
        app.trigger(name)
    assert app.flush(10)
    assert [r.path for r in receiver.requests] == ["/slow", "/high", "/high", "/low", "/low"]
    app.close()


def test_dispatch_reports_are_futures(receiver):
    receiver.default = Response(delay=0.2)
    app = background_app(receiver.url)
    report = app.dispatch("e", {"x": 1})
    (delivery,) = report
    assert delivery.status == "pending" and not report.done
    assert report.wait(5) and report.ok
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert delivery.detail == "HTTP 200"
    assert 0.15 < delivery.latency < 5
    app.close()


def test_a_failed_delivery_keeps_its_error_without_a_reference_cycle():
    # Kept errors hold the driver's frames: through a cycle, every failed delivery (a burst of
    # them against a dead receiver) would wait for a full garbage collection to be freed.
    dead = dead_url()
    app = eventisc.create_app(
        listeners=[{"kind": "http", "event_name": "e", "url": dead, "data": "{event_data}"}],
        delivery="background",
        retry={"max_attempts": 2, "backoff_factor": 0.01},
    )
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds stays in gc.garbage
    try:
        report = app.dispatch("e", {"n": 1})
        assert report.wait(10)
        (delivery,) = report.deliveries
        assert delivery.status == "failed" and delivery.attempts == 2
        assert isinstance(delivery.error, eventisc.ConnectError)
        assert "ConnectionRefusedError" in "".join(traceback.format_exception(delivery.error))
        del report, delivery
        assert app.flush(5)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, (Delivery, BaseException))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        app.close()
    assert cyclic == []


def test_full_queue_with_on_full_drop(receiver, caplog):
    receiver.default = Response(delay=0.5)
    app = background_app(
        receiver.url,
        dispatcher={"min_workers": 1, "max_workers": 1, "queue_size": 3, "on_full": "drop"},
    )
    app.trigger("e", {"i": 0})
    time.sleep(0.1)  # the worker took event 0; two more fit (queue_size counts it too)
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        counts = [app.trigger("e", {"i": i}) for i in range(1, 6)]
        report = app.dispatch("e", {"i": 6})
    assert counts == [1, 1, 0, 0, 0]
    (delivery,) = report
    assert delivery.status == "dropped" and isinstance(delivery.error, QueueFull)
    assert "queue is full" in caplog.text
    assert app.stats()["listeners"]["http:e"]["dropped"] == 4
    assert app.flush(10)
    assert sorted(r.json["i"] for r in receiver.requests) == [0, 1, 2]
    app.close()


def test_full_queue_with_on_full_block_waits_then_drops_without_a_spool(receiver):
    receiver.default = Response(delay=0.6)
    app = background_app(
        receiver.url,
        dispatcher={"min_workers": 1, "max_workers": 1, "queue_size": 2, "block_timeout": 0.2},
    )
    app.trigger("e", {"i": 0})
    time.sleep(0.1)
    assert app.trigger("e", {"i": 1}) == 1  # fits in the queue
    start = time.monotonic()
    assert app.trigger("e", {"i": 2}) == 0  # blocks 0.2 s, then gives up
    assert 0.15 < time.monotonic() - start < 0.5
    assert app.flush(10)
    assert sorted(r.json["i"] for r in receiver.requests) == [0, 1]
    app.close()


def test_flush_times_out_then_succeeds(receiver):
    receiver.default = Response(delay=0.5)
    app = background_app(receiver.url)
    app.trigger("e")
    assert app.flush(0.05) is False
    assert app.flush(5) is True
    app.close()


def test_close_without_a_spool_logs_what_is_lost(receiver, caplog):
    receiver.default = Response(delay=0.4)
    app = background_app(receiver.url, dispatcher={"min_workers": 1, "max_workers": 1})
    reports = [app.dispatch("e", {"i": i}) for i in range(5)]
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        app.close(timeout=0.1)
    assert "still queued at shutdown and are lost" in caplog.text
    statuses = [r.deliveries[0].status for r in reports]
    assert statuses.count("dropped") >= 3


def test_a_script_that_triggers_and_exits_still_delivers(receiver):
    # Given a script that triggers in the background and exits at once ...
    receiver.default = Response(delay=0.2)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import eventisc
        eventisc.init_default_app(
            listeners=[{{"kind": "http", "event_name": "e", "url": {receiver.url!r},
                         "data": "{{event_data}}"}}],
            delivery="background",
        )
        for i in range(5):
            eventisc.trigger("e", {{"i": i}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    # ... the atexit hook delivered everything before the process ended.
    assert sorted(r.json["i"] for r in receiver.requests) == list(range(5))


def test_background_without_a_spool_rejects_durable():
    with pytest.raises(eventisc.ConfigError, match="durable delivery needs"):
        eventisc.create_app(
            listeners=[{"kind": "http", "event_name": "e", "url": "http://x/"}],
            delivery="background",
            durable=True,
        )


def test_an_asynchronous_listener_is_pipelined_without_workers():
    app = eventisc.create_app(
        listeners=[{"kind": "pipelined", "event_name": "e", "fail_first": 3}],
        delivery="background",
        retry={"max_attempts": 3, "backoff_factor": 0.01},
    )
    listener = app.listeners[0]
    reports = [app.dispatch("e", {"i": i}) for i in range(50)]
    assert app.flush(10)
    assert all(r.ok for r in reports)
    assert sorted(d["i"] for d in listener.sent) == list(range(50))
    stats = app.stats()
    assert stats["listeners"]["pipelined:e"]["delivered"] == 50
    assert stats["listeners"]["pipelined:e"]["retried"] == 3
    assert stats["dispatcher"]["pending"] == 0 and stats["dispatcher"]["departures"] == 50
    assert listener.attempts == 53
    app.close()
