"""Relays: committed outbox rows delivered with the app's listeners, against real PostgreSQL,
a real HTTP receiver and a real RabbitMQ; several relays, crashes, restarts, shutdown."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

import eventisc
from eventisc import ConfigError
from eventisc.outbox.relay import Relay

from .outbox_support import (
    body_numbers,
    config,
    due_in,
    hook,
    listening,
    outbox_app,
    relay_process,
    relay_thread,
    row_numbers,
    stored,
    whole,
    write,
)
from .receiver import Response
from .support import wait_for

#: A retry policy whose waits are short and exact.
FAST_RETRY = {"max_attempts": 5, "backoff_factor": 0.2, "jitter": 0, "retry_on": ["5xx"]}


def ids_by_number(url: str, table: str) -> dict[int, str]:
    return {row["n"]: row["id"] for row in stored(url, table)}


def assert_same_ids(requests: list[Any], ids: dict[int, str]) -> None:
    """Every request carries the id of the row it came from, when the kind sends it."""
    for request in whole(requests):
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            assert key == ids[request.json["n"]]


def finish(process: subprocess.Popen, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """Wait for a relay process; its exit status and the stats it printed."""
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), err
    return process.returncode, json.loads(out.strip().splitlines()[-1])


# -- delivering ---------------------------------------------------------------------------------


def test_a_committed_row_is_delivered_once_and_a_rolled_back_one_never(
    receiver, postgres_url, outbox_table
):
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    with psycopg.connect(postgres_url) as conn:
        app.trigger("e", {"n": 1}, connection=conn)
        conn.commit()
        app.trigger("e", {"n": 2}, connection=conn)
        conn.rollback()
    ids = ids_by_number(postgres_url, outbox_table)
    assert app.run_relay(once=True, install_signals=False) == 0
    assert app.run_relay(once=True, install_signals=False) == 0  # nothing is due any more
    assert body_numbers(receiver.requests) == [1]
    assert_same_ids(receiver.requests, ids)
    assert stored(postgres_url, outbox_table) == []
    listener = app.stats()["listeners"]["hook"]
    assert (listener["delivered"], listener["failed"]) == (1, 0)


def test_an_idle_relay_is_woken_by_the_commit_not_by_its_poll(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver), poll=60)
    with relay_thread(app) as relay:
        wait_for(lambda: relay.waker.listening)
        with psycopg.connect(postgres_url) as conn:
            app.trigger("e", {"n": 7}, connection=conn)
            write(postgres_url, app, [1])  # another transaction, committed first
            receiver.wait_for(1, timeout=5)
            committed = time.monotonic()
            conn.commit()
        receiver.wait_for(2, timeout=5)
        assert body_numbers(receiver.requests) == [1, 7]  # 7 only once committed
        assert receiver.requests[1].received - committed < 1.0
        wait_for(lambda: stored(postgres_url, outbox_table) == [])
    stats = relay.stats()
    assert (stats["claimed"], stats["delivered"], stats["in_flight"]) == (2, 2, 0)


def test_the_notification_keeps_the_row_id_and_what_was_rendered(
    receiver, postgres_url, outbox_table
):
    listener = hook(receiver, headers={"X-Event": "{event_name}"}, method="PUT")
    app = outbox_app(postgres_url, outbox_table, listener)
    write(postgres_url, app, [3], extra="é ✓")
    ids = ids_by_number(postgres_url, outbox_table)
    app.run_relay(once=True, install_signals=False)
    (request,) = receiver.requests
    assert (request.method, request.path, request.headers["X-Event"]) == ("PUT", "/hook", "e")
    assert request.json == {"n": 3, "extra": "é ✓"}
    assert_same_ids(receiver.requests, ids)


def test_a_row_no_listener_can_deliver_is_dead_at_once_with_the_reason(
    receiver, postgres_url, outbox_table, caplog
):
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    write(postgres_url, app, [1, 2, 3])
    seqs = [row["seq"] for row in stored(postgres_url, outbox_table)]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {outbox_table} SET listener = 'ghost' WHERE seq = %s", [seqs[0]])
        conn.execute(f"UPDATE {outbox_table} SET payload = 'not json' WHERE seq = %s", [seqs[1]])
    with caplog.at_level(logging.ERROR):
        assert app.run_relay(once=True, install_signals=False) == 0
    assert body_numbers(receiver.requests) == [3]
    ghost, garbled = stored(postgres_url, outbox_table)
    assert (ghost["state"], garbled["state"]) == ("dead", "dead")
    assert "'ghost' is not in this config (its listeners: hook)" in ghost["last_error"]
    assert "payload cannot be decoded" in garbled["last_error"]
    assert f"outbox row {seqs[0]}" in caplog.text and "payload cannot be decoded" in caplog.text
    assert app.stats()["relay"]["dead"] == 2
    assert app.stats()["listeners"]["hook"]["failed"] == 1  # the ghost has no listener


def test_a_row_written_for_another_kind_is_dead(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    write(postgres_url, app, [1])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {outbox_table} SET kind = 'rabbit'")
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert row["state"] == "dead" and "written for a rabbit listener" in row["last_error"]
    assert receiver.requests == []


def test_an_app_without_an_outbox_has_no_relay():
    with pytest.raises(ConfigError, match="outbox"):
        eventisc.App(listeners=[]).run_relay(once=True)


# -- retries and dead rows ------------------------------------------------------------------------


def test_503_503_200_is_retried_on_the_schedule_kept_in_the_table(
    receiver, postgres_url, outbox_table
):
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=FAST_RETRY))
    receiver.respond(Response(503), Response(503))
    write(postgres_url, app, [1])
    (row,) = stored(postgres_url, outbox_table)

    # Each run delivers what is due and returns: the row waits in the table between attempts.
    for attempts, delay in ((1, 0.2), (2, 0.4)):
        assert app.run_relay(once=True, install_signals=False) == 0
        (now,) = stored(postgres_url, outbox_table)
        assert (now["state"], now["attempts"], now["locked_by"]) == ("pending", attempts, None)
        assert now["delay"] == pytest.approx(delay, abs=0.02)
        assert "HTTPStatusError" in now["last_error"] and "503" in now["last_error"]
        wait_for(lambda: due_in(postgres_url, outbox_table, row["seq"]) <= 0)
    app.run_relay(once=True, install_signals=False)

    assert stored(postgres_url, outbox_table) == []
    assert body_numbers(receiver.requests) == [1, 1, 1]
    first, second, third = (r.received for r in receiver.requests)
    assert second - first >= 0.2 and third - second >= 0.4
    listener = app.stats()["listeners"]["hook"]
    assert (listener["retried"], listener["delivered"], listener["failed"]) == (2, 1, 0)
    assert_same_ids(receiver.requests, {1: row["id"]})


def test_retry_after_replaces_the_backoff(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=FAST_RETRY))
    receiver.respond(Response(503, headers={"Retry-After": "3"}))
    write(postgres_url, app, [1])
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert row["attempts"] == 1 and row["delay"] == pytest.approx(3, abs=0.05)


def test_exhausted_retries_make_the_row_dead_and_a_replayed_row_is_delivered(
    receiver, postgres_url, outbox_table
):
    retry = {**FAST_RETRY, "max_attempts": 3, "backoff_factor": 0}
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=retry))
    receiver.default = Response(503)
    write(postgres_url, app, [1])
    assert app.run_relay(once=True, install_signals=False) == 0  # retries due at once
    (row,) = stored(postgres_url, outbox_table)
    assert (row["state"], row["attempts"], row["locked_by"]) == ("dead", 3, None)
    assert "503" in row["last_error"]
    assert len(receiver.requests) == 3
    assert app.stats()["listeners"]["hook"]["failed"] == 1

    app.run_relay(once=True, install_signals=False)  # a dead row is left alone
    assert len(receiver.requests) == 3

    receiver.default = Response(200)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {outbox_table} SET state = 'pending', attempts = 0, due_at = now()")
    app.run_relay(once=True, install_signals=False)
    assert stored(postgres_url, outbox_table) == []
    assert body_numbers(receiver.requests) == [1, 1, 1, 1]


def test_a_failure_the_policy_does_not_retry_is_dead_after_one_attempt(
    receiver, postgres_url, outbox_table
):
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=FAST_RETRY))
    receiver.respond(Response(404))
    write(postgres_url, app, [1])
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert "404" in row["last_error"]


def test_a_password_in_an_error_is_masked_in_the_row(postgres_url, outbox_table):
    listener = {
        "kind": "http", "name": "hook", "event_name": "e",
        "url": "http://user:s3cret@127.0.0.1:9/hook", "retry": FAST_RETRY,
        "data": "{event_data}",
    }  # fmt: skip
    app = outbox_app(postgres_url, outbox_table, listener)
    write(postgres_url, app, [1])
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert row["attempts"] == 1 and row["last_error"]
    assert "s3cret" not in row["last_error"]


def test_retained_rows_are_kept_as_delivered_then_purged(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver), retain_delivered=0.3)
    write(postgres_url, app, [1])
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert (row["state"], row["attempts"], row["locked_by"]) == ("delivered", 1, None)
    wait_for(lambda: stored(postgres_url, outbox_table, "updated_at < now() - interval '0.3 s'"))
    app.run_relay(once=True, install_signals=False)  # a relay purges when it starts
    assert stored(postgres_url, outbox_table) == []
    assert len(receiver.requests) == 1


# -- ordering keys --------------------------------------------------------------------------------


def test_ordering_keys_hold_under_random_503s(receiver, postgres_url, outbox_table):
    # Given 5 keys of 30 rows each, and a receiver answering 503 to about a third of requests
    retry = {"max_attempts": 50, "backoff_factor": 0.005, "max_backoff": 0.02, "jitter": 0}
    listener = hook(receiver, retry=retry, ordering_key="{event_data['key']}")
    app = outbox_app(postgres_url, outbox_table, listener)
    rng = random.Random(7)
    script = [503 if rng.random() < 0.35 else 200 for _ in range(2000)]
    receiver.respond(*(Response(status) for status in script))
    with psycopg.connect(postgres_url) as conn:
        for n in range(150):
            app.trigger("e", {"n": n, "key": f"k{n % 5}"}, connection=conn)
        conn.commit()

    # When a relay delivers them all
    with relay_thread(app, concurrency=8):
        wait_for(lambda: stored(postgres_url, outbox_table) == [], timeout=60)

    # Then per key, every attempt came after the previous row was delivered: the numbers
    # received never go back, and the delivered ones are in write order.
    statuses = script + [200] * len(receiver.requests)
    by_key: dict[str, list[tuple[int, int]]] = {}
    for request, status in zip(receiver.requests, statuses, strict=False):
        body = request.json
        by_key.setdefault(body["key"], []).append((body["n"], status))
    assert sorted(by_key) == [f"k{i}" for i in range(5)]
    for key, received in by_key.items():
        numbers = [n for n, _ in received]
        assert numbers == sorted(numbers), key
        delivered = [n for n, status in received if status == 200]
        assert delivered == list(range(int(key[1]), 150, 5)), key
    assert script[: len(receiver.requests)].count(503) > 20  # the 503s did happen


def test_a_dead_row_blocks_its_key_unless_on_dead_is_skip(receiver, postgres_url, outbox_table):
    # Given two ordered listeners whose first rows are refused (404: dead at once)
    keyed = {"ordering_key": "{event_data['key']}", "retry": FAST_RETRY}
    app = outbox_app(
        postgres_url,
        outbox_table,
        hook(receiver, name="block", **keyed),
        hook(receiver, name="skip", on_dead="skip", **keyed),
    )
    receiver.respond(Response(404), Response(404))
    write(postgres_url, app, [0, 1, 2], key="k")

    # When a relay delivers what is due
    app.run_relay(once=True, install_signals=False)

    # Then `skip` went on without its dead row, `block` waits behind it
    assert body_numbers(receiver.requests, "/skip") == [0, 1, 2]
    assert body_numbers(receiver.requests, "/block") == [0]
    rows = stored(postgres_url, outbox_table)
    states = {(row["listener"], row["n"]): (row["state"], row["attempts"]) for row in rows}
    assert states == {
        ("block", 0): ("dead", 1), ("block", 1): ("pending", 0), ("block", 2): ("pending", 0),
        ("skip", 0): ("dead", 1),
    }  # fmt: skip

    # And once the dead row is replayed, the key goes on in order
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {outbox_table} SET state = 'pending', attempts = 0, due_at = now() "
            "WHERE listener = 'block' AND state = 'dead'"
        )
    app.run_relay(once=True, install_signals=False)
    assert body_numbers(receiver.requests, "/block") == [0, 0, 1, 2]


def test_a_relay_held_back_by_a_dead_row_looks_again_about_once_a_second(
    receiver, postgres_url, outbox_table
):
    keyed = {"ordering_key": "{event_data['key']}", "retry": FAST_RETRY}
    app = outbox_app(postgres_url, outbox_table, hook(receiver, **keyed), poll=30)
    receiver.respond(Response(404))
    write(postgres_url, app, [0, 1], key="k")
    with relay_thread(app) as relay:
        wait_for(lambda: relay.stats()["dead"] == 1 and relay.stats()["unwritten"] == 0)
        start, queries = time.monotonic(), relay.stats()["queries"]
        wait_for(lambda: relay.stats()["queries"] >= queries + 3, timeout=10)
        elapsed = time.monotonic() - start
    assert elapsed >= 1.5  # not a busy loop: about a query a second
    assert body_numbers(receiver.requests) == [0]


def test_an_idle_relay_queries_about_once_per_poll(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver), poll=0.25)
    with relay_thread(app, report_interval=0) as relay:
        wait_for(lambda: relay.stats()["claims"] >= 1)
        start, claims = time.monotonic(), relay.stats()["claims"]
        wait_for(lambda: relay.stats()["claims"] >= claims + 4)
        elapsed = time.monotonic() - start
        queries = relay.stats()["queries"]
    assert elapsed >= 0.7  # four polls of 0.25 s (the first may come at once)
    assert queries <= 2 * relay.stats()["claims"] + 2  # a claim and a next_due per poll


# -- several relays, crashes ---------------------------------------------------------------------


@pytest.mark.slow
def test_two_relay_processes_deliver_each_of_2000_rows_exactly_once(
    receiver, postgres_url, outbox_table, tmp_path
):
    receiver.default = Response(delay=0.002)
    settings = config(postgres_url, outbox_table, [hook(receiver)])
    relays = [relay_process(tmp_path, settings, report_interval=0) for _ in range(2)]
    try:
        wait_for(lambda: listening(postgres_url, outbox_table) == 2, timeout=30)
        app = outbox_app(postgres_url, outbox_table, hook(receiver))
        write(postgres_url, app, range(2000))  # one commit, one NOTIFY: both relays wake
        receiver.wait_for(2000, timeout=60)
        wait_for(lambda: stored(postgres_url, outbox_table) == [], timeout=30)
    finally:
        for process in relays:
            process.send_signal(signal.SIGTERM)
    results = [finish(process) for process in relays]
    assert [status for status, _ in results] == [0, 0]
    numbers = body_numbers(receiver.requests)
    assert sorted(numbers) == list(range(2000))  # each exactly once
    delivered = [stats["delivered"] for _, stats in results]
    assert sum(delivered) == 2000 and min(delivered) > 0, delivered


@pytest.mark.slow
def test_a_killed_relay_s_rows_are_delivered_by_the_next_after_their_lease(
    receiver, postgres_url, outbox_table, tmp_path
):
    # Given 2,000 rows, a slow receiver and a relay killed outright in the middle
    receiver.default = Response(delay=0.02)
    settings = config(postgres_url, outbox_table, [hook(receiver)], lease=2)
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    write(postgres_url, app, range(2000))
    ids = ids_by_number(postgres_url, outbox_table)
    first = relay_process(tmp_path, settings, report_interval=0)
    receiver.wait_for(500, timeout=60)
    first.kill()
    first.wait(10)
    in_flight = {row["n"] for row in stored(postgres_url, outbox_table, "locked_by IS NOT NULL")}
    # Leased at the kill: rows in hand, and rows delivered whose outcome was not written yet
    assert in_flight

    # When another relay starts before their lease ran out
    second = relay_process(tmp_path, settings, report_interval=0)
    try:
        receiver.wait_for(2000, timeout=90)
        wait_for(lambda: stored(postgres_url, outbox_table) == [], timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
    assert finish(second)[0] == 0

    # Then every row was delivered; twice only if it was in flight at the kill, with its id
    counts = Counter(body_numbers(receiver.requests))
    assert set(counts) == set(range(2000))
    twice = {n for n, count in counts.items() if count > 1}
    assert twice <= in_flight and max(counts.values()) <= 2
    assert_same_ids(receiver.requests, ids)


@pytest.mark.slow
def test_sigterm_finishes_what_is_in_flight_and_gives_back_the_rest(
    receiver, postgres_url, outbox_table, tmp_path
):
    receiver.default = Response(delay=1.0)
    settings = config(postgres_url, outbox_table, [hook(receiver)], concurrency=4)
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    write(postgres_url, app, range(20))
    process = relay_process(tmp_path, settings, report_interval=0)
    receiver.wait_for(4, timeout=30)
    process.send_signal(signal.SIGTERM)
    status, stats = finish(process)

    assert status == 0
    assert receiver.wait_sent(4) and len(receiver.requests) == 4  # finished, nothing new
    rows = stored(postgres_url, outbox_table)
    assert len(rows) == 16 and {n for n in row_numbers(postgres_url, outbox_table)}.isdisjoint(
        body_numbers(receiver.requests)
    )
    assert all(row["locked_by"] is None and row["attempts"] == 0 for row in rows)
    assert (stats["delivered"], stats["in_flight"], stats["unwritten"]) == (4, 0, 0)


@pytest.mark.slow
def test_postgresql_restarted_mid_run(receiver, postgres_url, outbox_table, caplog):
    receiver.default = Response(delay=0.002)
    app = outbox_app(postgres_url, outbox_table, hook(receiver), lease=5)
    write(postgres_url, app, range(2000))
    with caplog.at_level(logging.INFO, "eventisc.outbox"), relay_thread(app) as relay:
        receiver.wait_for(400, timeout=60)
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True, timeout=120)
        receiver.wait_for(2000, timeout=90)
        wait_for(lambda: relay.stats()["unwritten"] == 0 and relay.stats()["in_flight"] == 0,
                 timeout=30)  # fmt: skip
        wait_for(lambda: stored(postgres_url, outbox_table) == [], timeout=30)
        stats = relay.stats()
    assert sorted(set(body_numbers(receiver.requests))) == list(range(2000))
    assert stats["delivered"] == 2000 and stats["database"] == "up"
    assert "PostgreSQL answers again" in caplog.text


def test_postgresql_unreachable_is_logged_and_tried_again(receiver, caplog):
    from .faults import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    app = outbox_app(url, "eventisc_outbox", hook(receiver), connect_timeout=1)
    with caplog.at_level(logging.WARNING, "eventisc.outbox"), relay_thread(app) as relay:
        wait_for(lambda: relay.stats()["database"] == "down")
        wait_for(lambda: "trying again in" in caplog.text)
    assert "cannot connect to the outbox table" in caplog.text


# -- RabbitMQ -----------------------------------------------------------------------------------


def test_a_rabbitmq_listener_publishes_pipelined_through_the_relay(
    broker, rabbitmq_url, postgres_url, outbox_table
):
    queue = broker.name()
    listener = {
        "kind": "rabbit", "name": "rabbit", "event_name": "e", "url": rabbitmq_url,
        "queue_kwargs": {"queue": {"queue": queue}},
    }  # fmt: skip
    app = outbox_app(postgres_url, outbox_table, listener)
    assert app.listeners[0].delivers_async()
    with psycopg.connect(postgres_url) as conn:
        for n in range(50):
            app.trigger("e", {"n": n}, connection=conn)
        conn.commit()
    ids = [row["id"] for row in stored(postgres_url, outbox_table)]
    assert app.run_relay(once=True, concurrency=16, install_signals=False) == 0
    messages = broker.get(queue, 50)
    assert sorted(json.loads(body)["n"] for _, _, body in messages) == list(range(50))
    message_ids = {properties.message_id for _, properties, _ in messages}
    if message_ids != {None}:
        assert message_ids == set(ids)
    assert stored(postgres_url, outbox_table) == []
    assert app.stats()["listeners"]["rabbit"]["delivered"] == 50
    assert app.stats()["relay"]["delivered"] == 50


def test_relay_stats_count_what_it_did(receiver, postgres_url, outbox_table):
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=FAST_RETRY))
    receiver.respond(Response(503), Response(404))
    write(postgres_url, app, [1, 2, 3])
    relay = Relay(app, once=True, concurrency=1)
    assert relay.run() == 0
    stats = relay.stats()
    assert {k: stats[k] for k in ("claimed", "delivered", "retried", "dead", "in_flight")} == {
        "claimed": 3, "delivered": 1, "retried": 1, "dead": 1, "in_flight": 0,
    }  # fmt: skip
    assert stats["unwritten"] == 0 and stats["written"] == 3 and stats["database"] == "up"
    assert stats["circuits"]["hook"]["state"] == "closed"
    assert json.loads(json.dumps(stats)) == stats  # plain values


def test_the_listener_s_circuit_breaker_holds_attempts_back(postgres_url, outbox_table):
    from .faults import free_port

    listener = {
        "kind": "http", "name": "hook", "event_name": "e", "data": "{event_data}",
        "url": f"http://127.0.0.1:{free_port()}/hook",
        "retry": {"max_attempts": 6, "backoff_factor": 0, "retry_on": ["connect"]},
    }  # fmt: skip
    settings = config(postgres_url, outbox_table, [listener])
    settings["dispatcher"] = {"breaker_failures": 2, "breaker_reset": 30}
    app = eventisc.App.from_config(settings)
    write(postgres_url, app, [1])
    relay = Relay(app, once=True)
    relay.run()
    (row,) = stored(postgres_url, outbox_table)
    assert (row["state"], row["attempts"]) == ("dead", 6)
    assert row["last_error"].startswith("CircuitOpenError: ") and "not tried" in row["last_error"]
    assert relay.stats()["circuits"]["hook"] == {
        "state": "open", "opened": 1, "failures_in_a_row": 2,
    }  # fmt: skip


def test_the_relay_reports_its_counts_and_the_backlog(receiver, postgres_url, outbox_table,
                                                      caplog):  # fmt: skip
    app = outbox_app(postgres_url, outbox_table, hook(receiver, retry=FAST_RETRY))
    receiver.respond(Response(404))
    write(postgres_url, app, [1, 2])
    with caplog.at_level(logging.INFO, "eventisc.outbox"), relay_thread(app, report_interval=0.2):
        wait_for(lambda: "backlog of" in caplog.text and "dead=1 oldest" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if "dead=1 oldest" in r.getMessage())
    assert "pending=0 dead=1 oldest pending 0.0 s" in line
    assert any("claimed=2 delivered=1 retried=0 dead=1" in r.getMessage() for r in caplog.records)


def test_no_more_than_concurrency_deliveries_at_once(receiver, postgres_url, outbox_table):
    receiver.default = Response(delay=0.3)
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    write(postgres_url, app, range(9))
    assert app.run_relay(once=True, concurrency=3, install_signals=False) == 0
    arrivals = sorted(r.received for r in receiver.requests)
    assert len(arrivals) == 9
    # Each request lasts 0.3 s at least: a fourth one never starts while three are going on
    overlaps = [sum(1 for a in arrivals if a <= t < a + 0.3) for t in arrivals]
    assert max(overlaps) == 3


def test_a_forked_child_leaves_the_parent_s_relay_alone(receiver, postgres_url, outbox_table):
    from .support import in_child

    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    relay = Relay(app, once=True)
    code, report = in_child(lambda: (relay.run(), relay.stats()["claimed"]))
    assert (code, report) == (0, "(0, 0)")  # stopped in the child: nothing claimed there
    write(postgres_url, app, [1])
    assert relay.run() == 0 and body_numbers(receiver.requests) == [1]
