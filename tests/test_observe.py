"""Metrics, Prometheus export, lifecycle hooks, summaries, structured logs and asyncio."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import eventisc

from .receiver import Receiver, Response


@pytest.fixture
def receivers():
    made = {name: Receiver() for name in ("ok", "broken", "flaky")}
    yield made
    for r in made.values():
        r.close()


def scripted_app(receivers, **options):
    receivers["broken"].default = Response(500, b"boom")
    return eventisc.create_app(
        listeners=[
            {
                "kind": "http",
                "name": "ok",
                "event_name": "e",
                "url": receivers["ok"].url,
                "filter": {"kind": "expr", "expr": "event_data['n'] % 5 != 0"},
            },
            {"kind": "http", "name": "broken", "event_name": "e", "url": receivers["broken"].url},
            {
                "kind": "http",
                "name": "flaky",
                "event_name": "e",
                "url": receivers["flaky"].url,
                "retry": {"max_attempts": 3, "backoff_factor": 0},
            },
        ],
        **options,
    )


def run_script(app, receivers, n=10):
    # flaky answers 503 once for every event: each is delivered on its second attempt.
    for i in range(n):
        receivers["flaky"].respond(Response(503))
        app.trigger("e", {"n": i})
        receivers["flaky"].wait_for(2 * (i + 1))
    app.trigger("unheard")
    app.flush(30)


def test_stats_match_a_scripted_run(receivers):
    app = scripted_app(receivers)
    run_script(app, receivers)
    stats = app.stats()
    json.dumps(stats)  # plain, serializable
    ok, broken, flaky = (stats["listeners"][name] for name in ("ok", "broken", "flaky"))
    assert ok["matched"] == 10 and ok["filtered"] == 2 and ok["delivered"] == 8
    assert ok["failed"] == ok["retried"] == 0
    assert broken["failed"] == 10 and broken["delivered"] == 0
    assert flaky["delivered"] == 10 and flaky["retried"] == 10 and flaky["failed"] == 0
    totals = stats["app"]
    assert totals["triggered"] == 11
    assert totals["delivered"] == 18 and totals["failed"] == 10 and totals["retried"] == 10
    assert totals["latency"]["count"] == 28
    buckets = list(ok["latency"]["buckets"].values())
    assert buckets == sorted(buckets) and buckets[-1] == ok["latency"]["count"] == 8
    assert ok["latency"]["sum"] > 0
    assert stats["dispatcher"] is None
    assert len(receivers["ok"].requests) == 8


def test_background_stats_and_dispatcher_numbers(receiver):
    receiver.default = Response(delay=0.05)
    app = eventisc.create_app(
        listeners=[{"kind": "http", "name": "hook", "event_name": "e", "url": receiver.url}],
        delivery="background",
        dispatcher={"max_workers": 2, "monitor_interval": 0.02},
    )
    for _ in range(20):
        app.trigger("e")
    time.sleep(0.3)
    busy = app.stats()["dispatcher"]
    assert busy["workers"] >= 1 and busy["capacity"] == 10_000
    assert 0 < busy["load_avg"] <= 1
    assert app.flush(30)
    stats = app.stats()
    d = stats["dispatcher"]
    assert d["arrivals"] == 20 and d["departures"] == 20 and d["pending"] == 0
    assert d["avg_service"] >= 0.04 and d["avg_wait"] >= 0
    assert stats["listeners"]["hook"]["delivered"] == 20
    app.close()


def test_prometheus_text_parses_back_to_the_same_numbers(receivers):
    app = scripted_app(receivers, delivery="background")
    run_script(app, receivers, n=5)
    registry = CollectorRegistry()
    app.register_prometheus(registry, name="shop")
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name, **labels):
        return samples[(name, tuple(sorted({"app": "shop", **labels}.items())))]

    stats = app.stats()
    assert value("eventisc_triggered_total") == stats["app"]["triggered"] == 6
    for name in ("ok", "broken", "flaky"):
        snap = stats["listeners"][name]
        for outcome in ("delivered", "failed", "dropped", "spooled"):
            assert (
                value("eventisc_deliveries_total", listener=name, outcome=outcome) == snap[outcome]
            )
        assert value("eventisc_retries_total", listener=name) == snap["retried"]
        count = value("eventisc_delivery_latency_seconds_count", listener=name)
        assert count == snap["latency"]["count"]
        circuit = snap["circuit"]  # background listeners have a breaker
        assert value("eventisc_circuit_open", listener=name) == (circuit["state"] != "closed")
        assert value("eventisc_circuit_opened_total", listener=name) == circuit["opened"]
    assert value("eventisc_deliveries_total", listener="broken", outcome="failed") == 5
    assert value("eventisc_arrivals_total") == stats["dispatcher"]["arrivals"]
    assert value("eventisc_queue_capacity") == 10_000
    app.close()


def test_hooks_get_the_delivery_and_a_raising_hook_breaks_nothing(receivers, caplog):
    app = scripted_app(receivers)
    seen: dict[str, list] = {"delivered": [], "failed": [], "started": [], "closed": []}

    @app.on("delivered")
    def broken_hook(delivery):
        raise RuntimeError("hook bug")

    app.on("delivered", lambda d: seen["delivered"].append((d.name, d.status, d.attempts)))
    app.on("failed", lambda d: seen["failed"].append((d.name, type(d.error).__name__)))
    app.on("started", lambda a: seen["started"].append(a))
    app.on("closed", lambda a: seen["closed"].append(a))
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        receivers["flaky"].respond(Response(503))
        assert app.trigger("e", {"n": 1}) == 2
    assert seen["delivered"] == [("ok", "delivered", 1), ("flaky", "delivered", 2)]
    assert seen["failed"] == [("broken", "HTTPStatusError")]
    assert seen["started"] == [app]
    assert "a 'delivered' hook failed" in caplog.text and "hook bug" in caplog.text
    app.trigger("e", {"n": 2})
    assert seen["started"] == [app]  # once
    app.close()
    assert seen["closed"] == [app]
    with pytest.raises(ValueError, match="unknown event 'sent'"):
        app.on("sent", print)


def test_delivery_log_records_carry_structured_fields(receivers, caplog):
    app = scripted_app(receivers)
    with caplog.at_level(logging.DEBUG, logger="eventisc"):
        app.trigger("e", {"n": 1})
    failed = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert (failed.event_name, failed.listener, failed.attempt) == ("e", "broken", 1)
    assert failed.outcome == "failed" and failed.latency_ms >= 0
    delivered = [r for r in caplog.records if getattr(r, "outcome", None) == "delivered"]
    assert {r.listener for r in delivered} == {"ok", "flaky"}
    assert all(r.latency_ms > 0 for r in delivered)


def test_report_interval_logs_a_summary(receiver, caplog):
    with caplog.at_level(logging.INFO, logger="eventisc"):
        app = eventisc.create_app(
            listeners=[{"kind": "http", "event_name": "e", "url": receiver.url}],
            report_interval=0.05,
        )
        app.trigger("e")
        time.sleep(0.3)
        app.close()
    assert "eventisc: triggered=1 delivered=1 failed=0" in caplog.text


def test_atrigger_keeps_the_event_loop_ticking_while_a_slow_receiver_blocks(receiver):
    receiver.default = Response(delay=0.5)
    eventisc.init_default_app(listeners=[{"kind": "http", "event_name": "e", "url": receiver.url}])

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        count = await eventisc.atrigger("e", {"x": 1})
        report = await eventisc.get_current_app().adispatch("e")
        task.cancel()
        return count, report, ticks

    count, report, ticks = asyncio.run(main())
    assert count == 1 and report.ok
    # Two 0.5 s deliveries: the loop ticked all along (about 100 times), not once or twice.
    assert ticks > 30


def test_every_gauge_has_a_multiprocess_mode():
    from eventisc import prometheus

    gauges = {metric for metric, _ in prometheus._GAUGES.values()}
    gauges |= {metric for metric, _ in prometheus._OUTBOX_GAUGES.values()}
    gauges |= {"eventisc_listener_disabled", "eventisc_circuit_open", "eventisc_outbox_readable"}
    assert set(prometheus.GAUGE_MODES) == gauges
    assert set(prometheus.GAUGE_MODES.values()) <= {"livesum", "livemax", "livemin"}


def test_triggering_without_prometheus_imports_nothing_of_it(receiver):
    # The hot path pays nothing for the export when prometheus_client is not used.
    code = (
        "import sys, eventisc\n"
        f"eventisc.init_default_app(listeners=[{{'kind': 'http', 'event_name': 'e', "
        f"'url': {receiver.url!r}}}])\n"
        "assert eventisc.trigger('e') == 1\n"
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
