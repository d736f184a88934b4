"""The spool in use: dead letters, full queues, shutdown, durable delivery across SIGKILL,
and the `eventisc spool` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import eventisc
from eventisc.spool import Spool

from .conftest import rabbitmqctl
from .receiver import Receiver, Response
from .support import run_cli

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path, url, *, spool=None, **top):
    spool = spool or str(tmp_path / "spool.db")
    config = {
        "spool": {"path": spool},
        "listeners": [
            {"kind": "http", "name": "hook", "event_name": "e", "url": url, "data": "{event_data}"}
        ],
        **top,
    }
    path = tmp_path / "events.json"
    path.write_text(json.dumps(config))
    return str(path), spool


def test_sync_failure_after_retries_is_kept_as_a_dead_letter(tmp_path, receiver):
    receiver.default = Response(503, b"down for maintenance")
    config, spool_path = write_config(
        tmp_path, receiver.url, retry={"max_attempts": 2, "backoff_factor": 0}
    )
    app = eventisc.create_app(config_file=config)
    (delivery,) = app.dispatch("e", {"order": 7})
    assert delivery.status == "spooled" and delivery.attempts == 2
    assert app.trigger("e", {"order": 8}) == 0
    (first, second) = Spool(spool_path).entries()
    assert first.state == "dead" and first.reason == "failed" and first.attempts == 2
    assert "503" in first.error and "down for maintenance" in first.error
    assert first.notification.listener == "hook"
    assert json.loads(first.notification.payload["body"]) == {"order": 7}
    app.close()


def test_queue_full_goes_to_the_spool_by_default_when_there_is_one(tmp_path, receiver):
    receiver.default = Response(delay=0.5)
    config, spool_path = write_config(
        tmp_path,
        receiver.url,
        delivery="background",
        dispatcher={"min_workers": 1, "max_workers": 1, "queue_size": 2},
    )
    app = eventisc.create_app(config_file=config)
    app.trigger("e", {"i": 0})
    time.sleep(0.1)
    counts = [app.trigger("e", {"i": i}) for i in (1, 2, 3)]
    assert counts == [1, 0, 0]
    entries = Spool(spool_path).entries()
    assert [json.loads(e.notification.payload["body"])["i"] for e in entries] == [2, 3]
    assert {e.reason for e in entries} == {"queue full"}
    assert app.flush(10)
    app.close()


def test_close_spools_what_is_left_and_spool_replay_delivers_it(tmp_path):
    slow = Receiver()
    try:
        slow.default = Response(delay=0.3)
        config, spool_path = write_config(
            tmp_path,
            slow.url,
            delivery="background",
            dispatcher={"min_workers": 1, "max_workers": 1},
        )
        app = eventisc.create_app(config_file=config)
        for i in range(10):
            app.trigger("e", {"i": i})
        app.close(timeout=0.1)
        spool = Spool(spool_path)
        left = spool.entries()
        assert left and all(e.state == "pending" and e.reason == "shutdown" for e in left)
        assert all(e.owner is None for e in left)
        listed = run_cli("spool", "list", config)
        assert listed.returncode == 0, listed.stderr
        assert f"{len(left)} notification(s)" in listed.stdout
        slow.default = Response()
        replay = run_cli("spool", "replay", config)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert f"{len(left)} delivered, 0 kept" in replay.stdout
        assert spool.count() == 0
        # Every event arrived; one that was in flight at shutdown may have arrived twice.
        assert {r.json["i"] for r in slow.requests} == set(range(10))
    finally:
        slow.close()


def test_spool_commands_filter_show_and_purge(tmp_path, receiver):
    receiver.default = Response(500)
    config, spool_path = write_config(tmp_path, receiver.url)
    app = eventisc.create_app(config_file=config)
    for i in range(3):
        app.trigger("e", {"i": i})
    app.close()
    spool = Spool(spool_path)
    first = spool.entries()[0]
    shown = run_cli("spool", "show", config, str(first.id))
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["notification"]["listener"] == "hook"
    assert "no entry 999" in run_cli("spool", "show", config, "999").stdout
    assert "0 notification(s)" in run_cli("spool", "list", config, "--listener", "other").stdout
    assert "0 notification(s)" in run_cli("spool", "list", config, "--older-than", "1h").stdout
    failed = run_cli("spool", "replay", config, "--id", str(first.id))
    assert failed.returncode == 1 and "FAILED, kept" in failed.stdout
    assert spool.get(first.id).attempts == 2
    bad_age = run_cli("spool", "list", config, "--older-than", "soon")
    assert bad_age.returncode == 1 and "invalid age" in bad_age.stderr
    purged = run_cli("spool", "purge", config, "--id", str(first.id))
    assert "removed 1 notification(s)" in purged.stdout
    assert spool.count() == 2
    assert "removed 2" in run_cli("spool", "purge", config).stdout


def test_spool_commands_need_a_spool(tmp_path, receiver):
    path = tmp_path / "c.yaml"
    path.write_text(f"listeners:\n- {{kind: http, event_name: e, url: '{receiver.url}'}}\n")
    result = run_cli("spool", "list", str(path))
    assert result.returncode == 1 and "has no `spool`" in result.stderr


CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import eventisc
app = eventisc.create_app(config_file={config!r})
for i in range(1000):
    assert app.trigger("e", {{"i": i}}) == 1
print("triggered", flush=True)
time.sleep(600)
"""


def test_durable_notifications_survive_sigkill(tmp_path):
    # Given a receiver that is down (nothing listens on its port) ...
    probe = Receiver()
    port = probe.port
    probe.close()
    url = f"http://127.0.0.1:{port}/hook"
    config, spool_path = write_config(
        tmp_path,
        url,
        delivery="background",
        durable=True,
        retry={"max_attempts": 1000, "backoff_factor": 0.5, "max_backoff": 2},
    )
    # ... a process triggers 1,000 durable events and is killed with SIGKILL.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), config=config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "triggered"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert Spool(spool_path).count(state="pending") == 1000
    # When a new process starts with the same spool and the receiver is up ...
    receiver = Receiver(port)
    try:
        app = eventisc.create_app(config_file=config)
        # ... it delivers all 1,000 and empties the spool.
        receiver.wait_for(1000, timeout=120)
        assert {r.json["i"] for r in receiver.requests} == set(range(1000))
        deadline = time.monotonic() + 30
        while Spool(spool_path).count() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Spool(spool_path).count() == 0
        app.close()
    finally:
        receiver.close()


def test_durable_rows_are_removed_once_delivered(tmp_path, receiver):
    config, spool_path = write_config(tmp_path, receiver.url, delivery="background", durable=True)
    app = eventisc.create_app(config_file=config)
    for i in range(20):
        app.trigger("e", {"i": i})
    assert app.flush(10)
    assert Spool(spool_path).count() == 0
    assert len(receiver.requests) == 20
    app.close()


@pytest.mark.slow
def test_rabbitmq_restart_during_a_background_burst_loses_nothing(rabbitmq_url):
    import pika

    queue = f"eventisc-restart-{uuid.uuid4().hex[:8]}"
    app = eventisc.create_app(
        listeners=[
            {
                "kind": "rabbit",
                "event_name": "e",
                "url": rabbitmq_url,
                "queue_kwargs": {"queue": {"queue": queue, "durable": True}},
                "timeout": 5,
            }
        ],
        delivery="background",
        retry={"max_attempts": 100, "backoff_factor": 0.2, "max_backoff": 1},
        dispatcher={"max_workers": 4},
    )
    total = 5000
    triggered = threading.Event()

    def burst():
        for i in range(total):
            app.trigger("e", {"i": i})
            if i % 500 == 0:
                time.sleep(0.05)  # spread the burst over the restart
        triggered.set()

    thread = threading.Thread(target=burst)
    thread.start()
    # While the events are being triggered, RabbitMQ restarts.
    time.sleep(0.2)
    try:
        rabbitmqctl("stop_app")
        time.sleep(1)
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
    thread.join(120)
    assert triggered.is_set()
    assert app.flush(120), app._deliverer.dispatcher.stats()
    app.close()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        seen: list[int] = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            seen.append(json.loads(body)["i"])
        channel.queue_delete(queue)
    finally:
        connection.close()
    duplicates = len(seen) - len(set(seen))
    missing = set(range(total)) - set(seen)
    assert not missing, f"{len(missing)} missing, {duplicates} duplicates"
    print(f"{total} events, {duplicates} duplicates after the restart")


def test_check_shows_each_listeners_delivery(tmp_path, receiver):
    config, _ = write_config(tmp_path, receiver.url, delivery="background", durable=True)
    result = run_cli("check", config)
    assert result.returncode == 0, result.stderr
    assert "delivery: background, up to 5 attempts, durable" in result.stdout


def test_bad_delivery_options_are_config_errors(tmp_path, receiver):
    for listener_options, path in [
        ({"delivery": "later"}, "listeners[0].delivery"),
        ({"durable": True, "delivery": "background"}, "listeners[0].durable"),
        ({"priority": "high"}, "listeners[0].priority"),
    ]:
        listener = {"kind": "http", "event_name": "e", "url": receiver.url, **listener_options}
        with pytest.raises(eventisc.ConfigError) as info:
            eventisc.create_app(listeners=[listener])
        assert info.value.path == path, info.value
    with pytest.raises(eventisc.ConfigError) as info:
        eventisc.create_app(dispatcher={"on_full": "spool"})
    assert info.value.path == "dispatcher.on_full"
    with pytest.raises(eventisc.ConfigError) as info:
        eventisc.create_app(spool={"path": "/proc/eventisc/spool.db"})
    assert info.value.path == "spool.path"


def test_retries_count_against_the_queue_size_and_nothing_is_lost_at_close(tmp_path):
    # Given a receiver that is down and a policy that keeps retrying ...
    probe = Receiver()
    url = probe.url
    probe.close()
    config, spool_path = write_config(
        tmp_path,
        url,
        delivery="background",
        retry={"max_attempts": 1000, "backoff_factor": 0.05, "max_backoff": 0.2},
        dispatcher={"queue_size": 200, "max_workers": 2},
    )
    app = eventisc.create_app(config_file=config)
    peak = 0
    for i in range(2000):
        app.trigger("e", {"i": i})
        if i % 100 == 0:
            peak = max(peak, app.stats()["dispatcher"]["pending"])
    # ... memory holds at most queue_size deliveries (queued, waiting for a retry, in flight),
    assert peak <= 200
    app.close(timeout=0.2)
    # ... and after close every event is in the spool: the ones still retrying as pending, the
    # ones refused by the full queue as dead letters.
    entries = Spool(spool_path).entries()
    seen = [json.loads(e.notification.payload["body"])["i"] for e in entries]
    assert set(seen) == set(range(2000))
    assert {e.reason for e in entries} == {"queue full", "shutdown"}
