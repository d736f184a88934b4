"""Delivery on Celery workers: ``delivery: celery`` hands notifications to real worker
processes (``celery -A eventisc.worker worker -Q QUEUE``, started as a user starts them, with
``EVENTISC_CONFIG``) on real RabbitMQ and Redis brokers; a real HTTP receiver checks what they
send."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import psycopg
import pytest

import eventisc
from eventisc.errors import ConfigError, ConnectError
from eventisc.spool import Spool

from .celery_worker import broker_url
from .receiver import Receiver, Response

pytest.importorskip("celery")

#: How long a worker may take to start.
READY_TIMEOUT = 60.0


def _config(
    path: Path,
    url: str,
    queue: str,
    listeners: list[dict[str, Any]],
    **top: Any,
) -> Path:
    config = {
        "delivery": "celery",
        "celery_delivery": {"broker_url": url, "queue": queue, "timeout": 5},
        "listeners": listeners,
        **top,
    }
    path.write_text(json.dumps(config))
    return path


def _http(receiver: Receiver, name: str = "hook", **options: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": name,
        "event_name": "order_paid",
        "url": f"{receiver.url}/hooks/{name}",
        "headers": {"X-Source": "shop"},
        "data": "{event_data}",
        **options,
    }


class Worker:
    """A worker process started with the documented command; its log in ``log``."""

    def __init__(
        self,
        config: Path,
        queue: str,
        name: str,
        concurrency: int,
        log: Path,
        env: dict[str, str] | None = None,
    ):
        self.log = log
        env = {**os.environ, "EVENTISC_CONFIG": str(config), **(env or {})}
        env.pop("CELERY_BROKER_URL", None)
        command = [
            *(sys.executable, "-m", "celery", "-A", "eventisc.worker", "worker"),
            *("-Q", queue, "-n", f"{name}@%h", "--concurrency", str(concurrency)),
            *("--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            command, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if " ready." in self.text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the worker did not start:\n{self.text()[-3000:]}")

    def wait_log(self, words: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if words in self.text():
                return self.text()
            time.sleep(0.1)
        raise AssertionError(f"{words!r} not in the worker's log:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> str:
    return broker_url(request.param)


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue no other test uses, deleted afterwards from the brokers that have it."""
    name = f"eventisc-test-{uuid.uuid4().hex[:12]}"
    yield name
    for which in ("rabbitmq", "redis"):
        with contextlib.suppress(Exception):
            with kombu.Connection(broker_url(which), connect_timeout=5) as conn:
                conn.default_channel.queue_delete(name)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def _start(
    workers: list[Worker],
    config: Path,
    queue: str,
    tmp_path: Path,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> Worker:
    name = f"w{len(workers)}-{uuid.uuid4().hex[:6]}"
    worker = Worker(config, queue, name, concurrency, tmp_path / f"{name}.log", env)
    workers.append(worker)
    worker.wait_ready()
    return worker


def _received(receiver: Receiver, count: int, workers: list[Worker], timeout: float = 30) -> Any:
    """The receiver's first ``count`` requests; the workers' logs in the error otherwise."""
    try:
        return receiver.wait_for(count, timeout=timeout)[:count]
    except AssertionError as exc:
        logs = "\n".join(worker.text()[-3000:] for worker in workers)
        raise AssertionError(f"{exc}; the workers' logs:\n{logs}") from None


def _app(config: Path) -> eventisc.App:
    return eventisc.create_app(config_file=str(config))


def test_a_worker_delivers_with_body_headers_and_the_notification_id(
    broker: str, queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    config = _config(tmp_path / "events.json", broker, queue, [_http(receiver)])
    _start(workers, config, queue, tmp_path)
    with _app(config) as app:
        report = app.dispatch("order_paid", {"order": 7, "total": "9.90"})
        [delivery] = report.deliveries
        assert delivery.status == "outboxed", delivery.error
        assert app.stats()["listeners"]["hook"]["outboxed"] == 1

    [request] = _received(receiver, 1, workers)
    assert request.method == "POST"
    assert request.path == "/hooks/hook"
    assert request.json == {"order": 7, "total": "9.90"}
    assert request.headers["X-Source"] == "shop"
    assert request.headers["Idempotency-Key"] == delivery.notification.id


def test_failures_are_retried_on_the_worker_with_backoff_and_the_same_id(
    queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    url = broker_url("rabbitmq")
    retry = {"max_attempts": 4, "backoff_factor": 0.5, "jitter": 0}
    config = _config(tmp_path / "events.json", url, queue, [_http(receiver, retry=retry)])
    _start(workers, config, queue, tmp_path)
    receiver.respond(Response(503), Response(503), Response(200))
    with _app(config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 8}).deliveries

    first, second, third = _received(receiver, 3, workers)
    keys = {r.headers["Idempotency-Key"] for r in (first, second, third)}
    assert keys == {delivery.notification.id}
    # Backoff 0.5 s then 1 s (jitter 0): Celery's countdown waits at least that.
    assert second.received - first.received >= 0.45
    assert third.received - second.received >= 0.95
    time.sleep(1)
    assert len(receiver.requests) == 3  # delivered on the third attempt: no fourth


def test_a_listener_the_worker_does_not_know_is_a_dead_letter_with_a_clear_error(
    queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    url = broker_url("rabbitmq")
    spool_path = tmp_path / "worker-spool.db"
    worker_config = _config(
        tmp_path / "worker.json", url, queue, [_http(receiver)], spool=str(spool_path)
    )
    trigger_config = _config(tmp_path / "service.json", url, queue, [_http(receiver, name="ghost")])
    worker = _start(workers, worker_config, queue, tmp_path)
    with _app(trigger_config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 9}).deliveries
    assert delivery.status == "outboxed"

    log = worker.wait_log("has no listener 'ghost'")
    assert "dead in the spool as #" in log
    spool = Spool(str(spool_path))
    [entry] = spool.entries(state="dead")
    assert entry.notification.id == delivery.notification.id
    assert entry.notification.listener == "ghost"
    assert entry.notification.payload["body"] or entry.notification.payload
    assert "has no listener 'ghost'" in (entry.error or "")
    assert receiver.requests == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_broker_that_is_down_at_trigger_is_a_failure_kept_in_the_spool(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}//"
    config = _config(
        tmp_path / "events.json",
        url,
        "eventisc",
        [_http(receiver)],
        spool=str(tmp_path / "spool.db"),
    )
    config.write_text(
        json.dumps({**json.loads(config.read_text()), "celery_delivery": {
            "broker_url": url, "timeout": 1}})
    )  # fmt: skip
    with _app(config) as app:
        started = time.monotonic()
        report = app.dispatch("order_paid", {"order": 10})
        assert time.monotonic() - started < 5
        [delivery] = report.deliveries
        assert delivery.status == "spooled"
        assert isinstance(delivery.error, ConnectError)
        assert app.stats()["listeners"]["hook"]["spooled"] == 1
        [entry] = app.spool.entries(state="dead")  # type: ignore[union-attr]
    assert entry.notification.id == delivery.notification.id
    assert entry.notification.payload["url"].endswith("/hooks/hook")
    assert "ConnectError" in (entry.error or "")


def test_a_broker_that_is_down_without_a_spool_raises_with_raise_errors(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    config = _config(tmp_path / "events.json", url, "eventisc", [_http(receiver)])
    with _app(config) as app:
        app.raise_errors = True
        with pytest.raises(eventisc.TriggerError, match="cannot reach broker"):
            app.trigger("order_paid", {"order": 11})


def test_delivery_celery_needs_celery_delivery(receiver: Receiver) -> None:
    with pytest.raises(ConfigError, match="needs a `celery_delivery`") as caught:
        eventisc.App(listeners=[_http(receiver)], delivery="celery")
    assert caught.value.path == "delivery"


def test_celery_delivery_takes_an_app_or_a_broker_url(receiver: Receiver) -> None:
    with pytest.raises(ConfigError, match="one of the two") as caught:
        eventisc.App.from_config({"delivery": "celery", "celery_delivery": {"queue": "q"}})
    assert caught.value.path == "celery_delivery"
    with pytest.raises(ConfigError) as caught:
        eventisc.App.from_config(
            {"celery_delivery": {"broker_url": "amqp://h//", "queue": "a queue"}}
        )
    assert caught.value.path == "celery_delivery.queue"


def test_a_killed_worker_leaves_its_notifications_to_the_other_one(
    queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    # Given two workers and 2,000 notifications for a slow receiver,
    # when one worker is SIGKILLed in the middle of the batch,
    # then the other delivers every notification; a repeat has the same id, and only what
    # the killed worker had in progress (one task per pool process) comes again.
    url = broker_url("rabbitmq")
    count, concurrency = 2000, 6
    config = _config(tmp_path / "events.json", url, queue, [_http(receiver)])
    receiver.default = Response(delay=0.02)
    with _app(config) as app:
        ids = []
        for n in range(count):
            [delivery] = app.dispatch("order_paid", {"n": n}).deliveries
            assert delivery.status == "outboxed", delivery.error
            ids.append(delivery.notification.id)
    doomed = _start(workers, config, queue, tmp_path, concurrency=concurrency)
    _start(workers, config, queue, tmp_path, concurrency=concurrency)
    _received(receiver, 500, workers, timeout=60)
    doomed.kill()
    at_kill = len({r.headers["Idempotency-Key"] for r in receiver.requests})
    assert 500 <= at_kill < count - 300  # in the middle of the batch

    def whole() -> list[Any]:
        """The requests received whole: one the kill cut short (headers sent, body not) is
        no delivery."""
        return [r for r in receiver.requests if len(r.body) == int(r.headers["Content-Length"])]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if {r.headers["Idempotency-Key"] for r in whole()} >= set(ids):
            break
        time.sleep(0.2)
    time.sleep(0.5)  # a repeat still on its way counts too
    whole_requests = whole()
    keys = Counter(r.headers["Idempotency-Key"] for r in whole_requests)
    assert set(keys) == set(ids)
    repeated = [key for key, n in keys.items() if n > 1]
    assert len(repeated) <= concurrency, repeated
    assert all(keys[key] == 2 for key in repeated), repeated
    bodies = {r.headers["Idempotency-Key"]: r.json for r in whole_requests}
    assert sorted(body["n"] for body in bodies.values()) == list(range(count))


def test_the_outbox_relay_hands_its_rows_to_the_workers(
    queue: str,
    workers: list[Worker],
    receiver: Receiver,
    tmp_path: Path,
    postgres_url: str,
    outbox_table: str,
) -> None:
    # Given outbox rows and a worker, `eventisc relay --via celery --once` hands each row to
    # the queue and deletes it; the worker delivers it with the row's notification id.
    url = broker_url("rabbitmq")
    config = _config(
        tmp_path / "events.json",
        url,
        queue,
        [_http(receiver)],
        delivery="outbox",
        outbox={"url": postgres_url, "table": outbox_table},
    )
    _start(workers, config, queue, tmp_path)
    with _app(config) as app, psycopg.connect(postgres_url) as conn:
        reports = [app.dispatch("order_paid", {"n": n}, connection=conn) for n in range(3)]
        conn.commit()
    ids = [report["hook"].notification.id for report in reports]  # type: ignore[union-attr]
    env = {**os.environ, "EVENTISC_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "eventisc", "relay", "--via", "celery", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {outbox_table}").fetchone() == (0,)

    requests = _received(receiver, 3, workers)
    assert sorted(r.headers["Idempotency-Key"] for r in requests) == sorted(ids)
    assert sorted(r.json["n"] for r in requests) == [0, 1, 2]


def _eventisc(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "eventisc", *args],
        env={**os.environ, "EVENTISC_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _dead_rows(postgres_url: str, table: str, count: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            found = conn.execute(
                f"SELECT id, listener, payload, attempts, last_error FROM {table} "
                "WHERE state = 'dead' ORDER BY seq"
            ).fetchall()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_worker_with_an_outbox_keeps_its_final_failures_as_dead_rows(
    queue: str,
    workers: list[Worker],
    receiver: Receiver,
    tmp_path: Path,
    postgres_url: str,
    outbox_table: str,
) -> None:
    # Given a worker whose config has an outbox (and a spool), a notification the receiver
    # keeps refusing becomes a dead row of the outbox table, not a spool entry;
    # `outbox list --state dead` shows it and `outbox replay` has the relay deliver it.
    url = broker_url("rabbitmq")
    retry = {"max_attempts": 2, "backoff_factor": 0.1, "jitter": 0}
    spool_path = tmp_path / "worker-spool.db"
    config = _config(
        tmp_path / "events.json",
        url,
        queue,
        [_http(receiver, retry=retry)],
        outbox={"url": postgres_url, "table": outbox_table},
        spool=str(spool_path),
    )
    receiver.default = Response(503)
    worker = _start(workers, config, queue, tmp_path)
    with _app(config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 21}).deliveries
        assert delivery.status == "outboxed", delivery.error

    [row] = _dead_rows(postgres_url, outbox_table, 1)
    notification_id, listener, payload, attempts, last_error = row
    assert "dead in the outbox as row" in worker.wait_log("dead in the outbox as row")
    assert notification_id == delivery.notification.id
    assert listener == "hook"
    assert attempts == 2
    assert "503" in last_error
    assert json.loads(json.loads(payload)["body"]) == {"order": 21}
    assert len(receiver.requests) == 2
    if spool_path.exists():
        assert Spool(str(spool_path)).entries(state="dead") == []

    listed = _eventisc(config, "outbox", "list", str(config), "--state", "dead")
    assert "1 row(s)" in listed and "hook" in listed and "503" in listed
    assert "1" in _eventisc(config, "outbox", "replay", str(config))
    receiver.default = Response(200)
    _eventisc(config, "relay", "--once", str(config))
    last = receiver.requests[-1]
    assert len(receiver.requests) == 3
    assert last.headers["Idempotency-Key"] == delivery.notification.id
    assert last.json == {"order": 21}
    assert _dead_rows(postgres_url, outbox_table, 0, timeout=0) == []


def test_a_listener_the_worker_does_not_know_is_a_dead_row_with_an_outbox(
    queue: str,
    workers: list[Worker],
    receiver: Receiver,
    tmp_path: Path,
    postgres_url: str,
    outbox_table: str,
) -> None:
    url = broker_url("rabbitmq")
    outbox = {"url": postgres_url, "table": outbox_table}
    worker_config = _config(tmp_path / "worker.json", url, queue, [_http(receiver)], outbox=outbox)
    trigger_config = _config(tmp_path / "service.json", url, queue, [_http(receiver, name="ghost")])
    worker = _start(workers, worker_config, queue, tmp_path)
    with _app(trigger_config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 22}).deliveries

    log = worker.wait_log("has no listener 'ghost'")
    assert f"dead in the outbox table {outbox_table} as row" in log
    [(notification_id, listener, _, _, last_error)] = _dead_rows(postgres_url, outbox_table, 1)
    assert notification_id == delivery.notification.id
    assert listener == "ghost"
    assert "has no listener 'ghost'" in last_error


def _scrape(url: str) -> dict[tuple[str, str], float]:
    """``eventisc_deliveries_total`` of a ``/metrics`` page, by (listener, outcome), read with
    prometheus_client's own parser."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.labels["listener"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "eventisc_deliveries"
        for sample in family.samples
        if sample.name == "eventisc_deliveries_total"
    }


def test_a_worker_serves_its_delivery_numbers_by_listener(
    queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    # Given a worker started with EVENTISC_METRICS_PORT (two pool processes), after it
    # delivered 6 notifications and failed 2, its /metrics says so, labelled by listener.
    pytest.importorskip("prometheus_client")
    url = broker_url("rabbitmq")
    bad = {
        **_http(receiver, name="bad", event_name="order_refunded"),
        "url": f"http://127.0.0.1:{_closed_port()}/hooks/bad",
        "retry": {"max_attempts": 1},
    }
    config = _config(tmp_path / "events.json", url, queue, [_http(receiver), bad])
    port = _closed_port()
    env = {"EVENTISC_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": ""}
    _start(workers, config, queue, tmp_path, concurrency=2, env=env)
    with _app(config) as app:
        for n in range(6):
            app.dispatch("order_paid", {"n": n})
        for n in range(2):
            app.dispatch("order_refunded", {"n": n})
    _received(receiver, 6, workers)

    expected = {("hook", "delivered"): 6.0, ("bad", "failed"): 2.0}
    deadline = time.monotonic() + 20
    while True:
        found = _scrape(f"http://127.0.0.1:{port}/metrics")
        seen = {key: found.get(key) for key in expected}
        if seen == expected or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert seen == expected, found
    assert found[("hook", "failed")] == 0 and found[("bad", "delivered")] == 0


def test_the_worker_s_metrics_port_must_be_a_number(tmp_path: Path, receiver: Receiver) -> None:
    config = _config(tmp_path / "events.json", broker_url("rabbitmq"), "q", [_http(receiver)])
    env = {**os.environ, "EVENTISC_CONFIG": str(config), "EVENTISC_METRICS_PORT": "http"}
    done = subprocess.run(
        [sys.executable, "-c", "import eventisc.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "EVENTISC_METRICS_PORT" in done.stderr and "'http'" in done.stderr


def test_a_relay_via_celery_needs_celery_delivery(
    receiver: Receiver, postgres_url: str, outbox_table: str
) -> None:
    app = eventisc.App(
        listeners=[_http(receiver)],
        delivery="outbox",
        outbox={"url": postgres_url, "table": outbox_table},
    )
    with app, pytest.raises(ConfigError, match="needs a `celery_delivery`"):
        app.run_relay(once=True, via="celery", install_signals=False)


def test_a_receiver_s_retry_after_sets_the_countdown(
    queue: str, workers: list[Worker], receiver: Receiver, tmp_path: Path
) -> None:
    url = broker_url("rabbitmq")
    retry = {"max_attempts": 3, "backoff_factor": 0.1, "jitter": 0}
    config = _config(tmp_path / "events.json", url, queue, [_http(receiver, retry=retry)])
    _start(workers, config, queue, tmp_path)
    receiver.respond(Response(503, headers={"Retry-After": "2"}), Response(200))
    with _app(config) as app:
        app.dispatch("order_paid", {"order": 12})

    first, second = _received(receiver, 2, workers)
    assert second.received - first.received >= 1.9  # not the 0.1 s backoff


def test_secrets_stay_out_of_the_task_and_are_put_back_on_the_worker(
    queue: str,
    workers: list[Worker],
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a credential header (from the environment), the task on the broker holds a
    # reference to it, never its value; the worker, with the same config, sends the value.
    token = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("HOOK_TOKEN", token)
    url = broker_url("rabbitmq")
    listener = _http(receiver, headers={"Authorization": "Bearer ${HOOK_TOKEN}"})
    config = _config(tmp_path / "events.json", url, queue, [listener])
    with _app(config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 13}).deliveries
        assert delivery.status == "outboxed", delivery.error
    with kombu.Connection(url, connect_timeout=5) as conn:
        message = conn.default_channel.basic_get(queue, no_ack=False)
        assert message is not None
        raw = message.body
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
        conn.default_channel.basic_reject(message.delivery_info["delivery_tag"], requeue=True)
    assert token.encode() not in body
    assert b"$secret" in body and b"hook:headers.Authorization" in body

    _start(workers, config, queue, tmp_path)
    [request] = _received(receiver, 1, workers)
    assert request.headers["Authorization"] == f"Bearer {token}"


def test_the_service_s_own_celery_app_sends_and_runs_the_task(
    queue: str,
    workers: list[Worker],
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given `celery_delivery.app` naming the service's Celery app (on Redis), the tasks go
    # through it, and `celery -A eventisc.worker` installs the task on that same app.
    url = broker_url("redis")
    module = f"proj_celery_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        f"from celery import Celery\napp = Celery('proj', broker={url!r})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    config = tmp_path / "events.json"
    config.write_text(
        json.dumps(
            {
                "delivery": "celery",
                "celery_delivery": {"app": f"{module}:app", "queue": queue},
                "listeners": [_http(receiver)],
            }
        )
    )
    _start(workers, config, queue, tmp_path)
    with _app(config) as app:
        [delivery] = app.dispatch("order_paid", {"order": 14}).deliveries
        assert delivery.status == "outboxed", delivery.error

    [request] = _received(receiver, 1, workers)
    assert request.headers["Idempotency-Key"] == delivery.notification.id
    assert request.json == {"order": 14}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "EVENTISC_CONFIG is not set"),
        ({"listeners": []}, "the worker needs a `celery_delivery`"),
    ],
)
def test_the_worker_refuses_to_start_without_its_config(
    config: dict[str, Any] | None, message: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EVENTISC_CONFIG"}
    if config is not None:
        path = tmp_path / "events.json"
        path.write_text(json.dumps(config))
        env["EVENTISC_CONFIG"] = str(path)
    done = subprocess.run(
        [sys.executable, "-c", "import eventisc.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert message in done.stderr


def test_the_worker_uses_the_configs_broker_over_celery_broker_url(
    tmp_path: Path, receiver: Receiver
) -> None:
    # CELERY_BROKER_URL, which Celery reads over an app's broker_url, does not take the
    # worker of a config with celery_delivery.broker_url to another broker. (In a process of
    # its own: the module builds its Celery app when imported, as `celery -A` does.)
    url = broker_url("rabbitmq")
    config = _config(tmp_path / "events.json", url, "eventisc-env", [_http(receiver)])
    env = {**os.environ, "EVENTISC_CONFIG": str(config),
           "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}  # fmt: skip
    code = (
        "from eventisc.worker import app\n"
        "for c in (app.connection_for_read(), app.connection_for_write()):\n"
        "    print(c.as_uri(include_password=True))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    expected = kombu.Connection(url).as_uri(include_password=True)
    assert shown.stdout.split() == [expected, expected]
