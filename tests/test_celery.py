"""The celery kind against a real Celery worker, on RabbitMQ and on Redis.

Each broker gets one in-process worker for the module (the ``celery_worker`` fixture, see
tests/celery_worker.py), consuming a set of queues unique to this run; each test takes queues
of its own from that set. The worker's tasks record what they received. eventisc's listener
talks to the same broker through its own Celery app (``broker_url``), as a separate service
would.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp.exceptions
import celery
import celery._state
import kombu.exceptions
import pytest
import redis.exceptions

import eventisc
from eventisc import (
    ConfigError,
    ConnectError,
    DeliveryError,
    DeliveryTimeout,
    Rejected,
    TemplateError,
    TriggerError,
)
from eventisc.listeners.celery import CeleryListener, translate_error
from eventisc.spool import Spool

from .celery_worker import RECORD_TASK, CeleryWorker, rabbitmq_only, run_worker
from .conftest import RABBITMQ_PORT, REDIS_PORT
from .driver_errors import raised_from
from .faults import FaultRelay, free_port
from .support import in_child


def celery_listener(worker: CeleryWorker | None = None, **options: Any) -> CeleryListener:
    """A celery listener sending ``RECORD_TASK``, to ``worker``'s broker if one is given."""
    options.setdefault("event_name", "e")
    options.setdefault("task_name", RECORD_TASK)
    if worker is not None:
        options.setdefault("broker_url", worker.url)
    listener = CeleryListener.from_config({"kind": "celery", **options})
    assert isinstance(listener, CeleryListener)
    return listener


@pytest.fixture
def listeners() -> Iterator[list[CeleryListener]]:
    """Listeners closed after the test."""
    made: list[CeleryListener] = []
    yield made
    for listener in made:
        listener.close()


def send(listener: CeleryListener, event_name: str, event_data: Any) -> str:
    return listener.deliver(listener.render(event_name, event_data))


# -- delivering to a real worker --------------------------------------------------------------


def test_only_one_worker_runs_at_a_time(celery_worker):
    # Two in-process workers would stall each other (tests/celery_worker.py): refused.
    with pytest.raises(RuntimeError, match="already runs"):
        with run_worker(celery_worker.name, celery_worker.url):
            pass


def test_task_runs_with_the_rendered_args_and_kwargs(celery_worker, listeners):
    queue = celery_worker.queue()
    listener = celery_listener(
        celery_worker,
        queue=queue,
        task_args=["{event_name}", "{event_data['n']}", "n={event_data['n']}"],
        task_kwargs={"user": "{event_data['user']}", "fixed": [1, "two"]},
    )
    listeners.append(listener)
    detail = send(listener, "user_created", {"n": 42, "user": {"id": 7, "tags": ["a"]}})
    received = celery_worker.sent(detail)
    assert received["name"] == "eventisc_test.record"
    assert received["args"] == ["user_created", 42, "n=42"]
    assert received["kwargs"] == {"user": {"id": 7, "tags": ["a"]}, "fixed": [1, "two"]}
    assert received["queue"] == queue


def test_the_headers_show_the_arguments_as_celery_would_cut_at_its_limit(celery_worker, listeners):
    # eventisc writes argsrepr/kwargsrepr itself (repr is C; Celery's saferepr is not).
    queue = celery_worker.queue()
    listener = celery_listener(
        celery_worker, queue=queue, task_args=["{event_name}"], task_kwargs={"d": "{event_data}"}
    )
    listeners.append(listener)
    received = celery_worker.sent(send(listener, "e", {"n": 1}))
    assert received["argsrepr"] == "['e']" and received["kwargsrepr"] == "{'d': {'n': 1}}"
    big = celery_worker.sent(send(listener, "e", {"text": "x" * 5000}))
    assert len(big["kwargsrepr"]) == 1024 and big["kwargsrepr"].endswith("...")
    own = celery_listener(celery_worker, queue=queue, send_task_kwargs={"kwargsrepr": "(hidden)"})
    listeners.append(own)
    assert celery_worker.sent(send(own, "e", {"secret": 1}))["kwargsrepr"] == "(hidden)"


def test_default_kwargs_from_an_event_isc_yaml_config(celery_worker, tmp_path):
    # Given event-isc's README config, unquoted templates included (YAML reads them as maps)
    queue = celery_worker.queue()
    config = tmp_path / "eventisc.yaml"
    config.write_text(
        "name_prefix: myapp.\n"
        "listeners:\n"
        "- kind: celery\n"
        "  event_name_regex: myapp[.].*_created\n"
        f"  queue: {queue}\n"
        "  task_name: eventisc_test.record\n"
        f"  broker_url: {celery_worker.url}\n"
        "  task_kwargs:\n"
        "    event_name: {event_name}\n"
        "    event_data: {event_data}\n"
        "- kind: celery\n"
        "  event_name: myapp.foo_created\n"
        f"  queue: {queue}\n"
        "  task_name: eventisc_test.other\n"
        f"  broker_url: {celery_worker.url}\n"
    )
    with eventisc.create_app(config_file=str(config), raise_errors=True) as app:
        before = celery_worker.recorder.ids()
        assert app.trigger("foo_created", {"foo": "bar"}) == 2
        received = celery_worker.recorder.wait_new(before, 2)
    expected = {"event_name": "myapp.foo_created", "event_data": {"foo": "bar"}}
    assert sorted(r["name"] for r in received) == ["eventisc_test.other", "eventisc_test.record"]
    assert all(r["kwargs"] == expected and r["args"] == [] for r in received)


def test_event_data_as_the_keyword_arguments(celery_worker, listeners):
    listener = celery_listener(
        celery_worker, queue=celery_worker.queue(), task_kwargs="**event_data"
    )
    listeners.append(listener)
    received = celery_worker.sent(send(listener, "e", {"user_id": 3, "email": "a@example.com"}))
    assert received["kwargs"] == {"user_id": 3, "email": "a@example.com"}
    assert received["args"] == []


def test_templated_task_name_and_queue(celery_worker, listeners):
    queue = celery_worker.queue()
    listener = celery_listener(
        celery_worker,
        task_name="eventisc_test.{event_data['handler']}",
        queue="{event_data['queue']}",
        task_args=["{event_data['queue']}"],
    )
    listeners.append(listener)
    received = celery_worker.sent(send(listener, "e", {"handler": "other", "queue": queue}))
    assert received["name"] == "eventisc_test.other"
    assert received["queue"] == queue


@rabbitmq_only
def test_send_task_kargs_alias_reaches_send_task(celery_worker, listeners):
    listener = celery_listener(
        celery_worker, queue=celery_worker.queue(), send_task_kargs={"expires": 600, "priority": 3}
    )
    listeners.append(listener)
    assert listener.send_task_kwargs == {"expires": 600, "priority": 3}
    received = celery_worker.sent(send(listener, "e", {}))
    assert received["expires"] is not None  # the worker got the expiry send_task set


@rabbitmq_only
def test_current_app_is_resolved_at_delivery(celery_worker):
    listener = celery_listener(None, queue=celery_worker.queue(), task_args=["{event_data}"])
    assert listener.describe().endswith("(current_app)")
    previous = celery.current_app._get_current_object()
    celery_worker.app.set_current()  # after the listener was built: the lookup is per delivery
    try:
        assert listener.celery_app() is celery_worker.app
        received = celery_worker.sent(send(listener, "e", {"via": "current_app"}))
    finally:
        previous.set_current()
    assert received["args"] == [{"via": "current_app"}]


def test_current_app_without_a_broker_warns_once(caplog, monkeypatch):
    # In a thread where no app was made current, Celery hands out its fallback app (no
    # broker_url: amqp://guest@localhost//). That is a trap worth a warning.
    monkeypatch.setattr(celery._state, "default_app", None)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    listener = celery_listener(None)
    apps: list[celery.Celery] = []
    thread = threading.Thread(target=lambda: apps.extend([listener.celery_app()] * 2))
    thread.start()
    thread.join()
    assert apps[0].main == "default"
    warnings = [r for r in caplog.records if r.name == "eventisc.listeners.celery.listener"]
    assert len(warnings) == 1 and "set_default()" in warnings[0].getMessage()


def test_own_app_ignores_celery_broker_url_environment(celery_worker, listeners, monkeypatch):
    # CELERY_BROKER_URL is the *host* worker's setting in docker-compose files: it must not
    # redirect a listener that names its own broker.
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "amqp://guest:guest@127.0.0.1:1//")
    listener = celery_listener(celery_worker, queue=celery_worker.queue(), timeout=2)
    listeners.append(listener)
    assert celery_worker.sent(send(listener, "e", {}))["name"] == "eventisc_test.record"


@rabbitmq_only
def test_listeners_share_one_app_per_broker_and_timeout(celery_worker, listeners):
    queue = celery_worker.queue()
    first = celery_listener(celery_worker, queue=queue)
    second = celery_listener(celery_worker, queue=queue, task_name="eventisc_test.other")
    other_timeout = celery_listener(celery_worker, queue=queue, timeout=3)
    listeners += [first, second, other_timeout]
    app = first.celery_app()
    assert second.celery_app() is app
    assert other_timeout.celery_app() is not app
    first.close()  # the app stays open for the other listener
    assert celery_worker.sent(send(second, "e", {}))["name"] == "eventisc_test.other"
    second.close()  # the last user closed it; using a listener again opens a new one
    assert first.celery_app() is not app
    assert celery_worker.sent(send(first, "e", {}))["name"] == "eventisc_test.record"


def test_many_threads_deliver_through_one_listener(celery_worker, listeners):
    listener = celery_listener(
        celery_worker, queue=celery_worker.queue(), task_args=["{event_data}"]
    )
    listeners.append(listener)
    details: list[str] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                details.append(send(listener, "e", n * 10 + i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    received = sorted(celery_worker.sent(d)["args"][0] for d in details)
    assert received == sorted(n * 10 + i for n in range(16) for i in range(5))


@rabbitmq_only
def test_forked_child_opens_its_own_connection(celery_worker, listeners):
    listener = celery_listener(
        celery_worker, queue=celery_worker.queue(), task_args=["{event_data}"]
    )
    listeners.append(listener)
    celery_worker.sent(send(listener, "e", "parent before"))
    parent_app = listener.celery_app()
    parent_pool = parent_app.pool

    def child() -> str:
        app = listener.celery_app()
        fresh = app is not parent_app and app.pool is not parent_pool
        return f"{fresh} {send(listener, 'e', 'child')}"

    code, report = in_child(child)
    assert code == 0, report
    fresh, detail = report.split(" ", 1)
    assert fresh == "True"
    assert celery_worker.sent(detail)["args"] == ["child"]
    # The parent's pooled connection was not touched by the child: it still works.
    assert listener.celery_app() is parent_app
    assert celery_worker.sent(send(listener, "e", "parent after"))["args"] == ["parent after"]


# -- the task id ------------------------------------------------------------------------------


def test_the_task_id_is_the_notification_id(celery_worker, listeners):
    # Given a notification sent twice (a retry, a spool replay of it)
    queue = celery_worker.queue()
    listener = celery_listener(celery_worker, queue=queue, task_args=["{event_data}"])
    listeners.append(listener)
    notification = listener.render("e", 1)
    before = celery_worker.recorder.ids()
    details = [listener.deliver(notification) for _ in range(2)]
    # Then each carried the notification id as its task id: the id the worker ran it with
    assert details == [f"sent task {notification.id}"] * 2
    assert celery_worker.recorder.wait(notification.id)["args"] == [1]
    assert celery_worker.recorder.wait_new(before, 1)[0]["queue"] == queue
    # And an app's delivery reports the same
    with eventisc.create_app(listeners=[listener]) as app:
        (delivery,) = app.dispatch("e", 2)
    assert delivery.detail == f"sent task {delivery.notification.id}"
    assert celery_worker.recorder.wait(delivery.notification.id)["args"] == [2]


def test_a_task_id_in_send_task_kwargs_wins(celery_worker, listeners):
    task_id = f"fixed-{celery_worker.name}-{time.monotonic_ns()}"
    listener = celery_listener(
        celery_worker,
        queue=celery_worker.queue(),
        task_args=["{event_data}"],
        send_task_kwargs={"task_id": task_id, "countdown": 0},
    )
    listeners.append(listener)
    assert send(listener, "e", "mine") == f"sent task {task_id}"
    assert celery_worker.recorder.wait(task_id)["args"] == ["mine"]


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:secret@127.0.0.1:1//", "redis://:secret@127.0.0.1:{port}/15"],
    ids=["amqp", "redis"],
)
def test_broker_down_is_a_connect_error_within_the_timeout(url):
    url = url.format(port=free_port())
    app = eventisc.create_app(
        listeners=[
            {
                "kind": "celery",
                "event_name": "e",
                "task_name": "t",
                "broker_url": url,
                "queue": "q",
                "timeout": 1,
            }
        ],
        raise_errors=True,
    )
    started = time.monotonic()
    with app, pytest.raises(TriggerError) as info:
        app.trigger("e", {"x": 1})
    elapsed = time.monotonic() - started
    assert elapsed < 5
    ((_, error),) = info.value.failures
    assert isinstance(error, ConnectError) and error.transient
    assert "127.0.0.1" in str(error) and "secret" not in str(error)


def test_silent_broker_and_dead_pooled_connection_are_bounded(celery_worker, listeners):
    # Given a listener whose pooled connection works...
    proxy = FaultRelay(
        ("127.0.0.1", RABBITMQ_PORT if celery_worker.name == "rabbitmq" else REDIS_PORT)
    )
    url = (
        f"redis://{proxy.address}/15"
        if celery_worker.name == "redis"
        else f"amqp://guest:guest@{proxy.address}//"
    )
    try:
        listener = celery_listener(
            None,
            broker_url=url,
            queue=celery_worker.queue(),
            task_args=["{event_data}"],
            timeout=1.2,
        )
        listeners.append(listener)
        assert celery_worker.sent(send(listener, "e", "before"))["args"] == ["before"]
        # ...when the broker stops answering (half-open connection, hung broker),
        proxy.mode = "stall"
        for _ in range(2):  # the pooled connection, then a new one that gets no answer
            started = time.monotonic()
            with pytest.raises((DeliveryTimeout, ConnectError)):
                send(listener, "e", "lost")
            assert time.monotonic() - started < 3 * 1.2
        # ...and when it comes back after dropping every connection (a restart),
        proxy.reset_links()
        proxy.mode = "forward"
        # then the next delivery reconnects and the task runs.
        assert celery_worker.sent(send(listener, "e", "after"))["args"] == ["after"]
    finally:
        proxy.close()


@rabbitmq_only
def test_each_thread_sends_on_one_connection_of_its_own(celery_worker, listeners):
    # Given two listeners of one broker, used by 3 threads, 10 sends each, through a relay
    # counting connections,
    proxy = FaultRelay(("127.0.0.1", RABBITMQ_PORT))
    try:
        pair = [
            celery_listener(
                None,
                broker_url=f"amqp://guest:guest@{proxy.address}//",
                queue=celery_worker.queue(),
                task_args=["{event_data}"],
            )
            for _ in range(2)
        ]
        listeners.extend(pair)
        details: list[str] = []

        def sender(n: int) -> None:
            details.extend(send(pair[i % 2], "e", n * 100 + i) for i in range(10))

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # then every task arrives, and each thread made one connection, kept for its sends
        # through both listeners.
        received = sorted(celery_worker.sent(d)["args"][0] for d in details)
        assert received == sorted(n * 100 + i for n in range(3) for i in range(10))
        assert proxy.accepted == 3
    finally:
        proxy.close()


@rabbitmq_only
def test_unserializable_arguments_are_a_template_error(celery_worker, listeners):
    listener = celery_listener(
        celery_worker, queue=celery_worker.queue(), task_kwargs={"obj": "{event_data['obj']}"}
    )
    listeners.append(listener)
    notification = listener.render("e", {"obj": object()})  # render does not encode
    with pytest.raises(TemplateError, match="serialize"):
        listener.deliver(notification)


def test_event_data_that_is_not_a_mapping_cannot_be_the_kwargs():
    listener = celery_listener(None, task_kwargs="**event_data")
    with pytest.raises(TemplateError, match="mapping with string keys"):
        listener.render("e", [1, 2])
    with pytest.raises(TemplateError, match="mapping with string keys"):
        listener.render("e", {1: "a"})


def test_render_is_pure_and_its_payload_stands_alone():
    listener = celery_listener(
        None,
        broker_url="amqp://guest:guest@127.0.0.1:1//",
        queue="q-{event_data['n']}",
        task_args=["{event_data['n']}"],
        send_task_kwargs={"countdown": 5},
    )
    first = listener.render("e", {"n": 1})
    second = listener.render("e", {"n": 2})
    assert first.payload == {
        "task_name": "eventisc_test.record",
        "args": [1],
        "kwargs": {},
        "queue": "q-1",
        "options": {"countdown": 5},
    }
    assert second.payload["queue"] == "q-2"
    first.payload["options"]["countdown"] = 0  # payloads do not share state
    assert listener.render("e", {"n": 1}).payload["options"] == {"countdown": 5}
    assert listener._own_app is None  # nothing connected


def test_describe_masks_the_password():
    listener = celery_listener(
        None,
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        queue="foo_service",
        task_name="foo_handle_created",
    )
    assert listener.describe() == (
        "task foo_handle_created -> queue foo_service (amqp://guest:***@127.0.0.1:5672//)"
    )
    assert celery_listener(None).describe() == (
        "task eventisc_test.record -> default queue (current_app)"
    )


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ({"task_name": None}, "listeners[0].task_name", "None is not of type"),
        ({"task_kwargs": "event_data"}, "listeners[0].task_kwargs", "**event_data"),
        ({"task_kwargs": {1: "x"}}, "listeners[0].task_kwargs", "not a string"),
        ({"task_name": "t-{event_data["}, "listeners[0].task_name", "closing"),
        ({"queue": "{nope}"}, "listeners[0].queue", "nope"),
        ({"task_args": ["{event_data[}"]}, "listeners[0].task_args[0]", ""),
        (
            {"send_task_kwargs": {"countdown": 1}, "send_task_kargs": {"countdown": 2}},
            "listeners[0].send_task_kargs",
            "not both",
        ),
        ({"send_task_kwargs": {"queue": "x"}}, "listeners[0].send_task_kwargs.queue", "queue"),
        ({"send_task_kargs": {"args": [1]}}, "listeners[0].send_task_kargs.args", "task_args"),
        ({"send_task_kwargs": {"retry": False}}, "listeners[0].send_task_kwargs.retry", "timeout"),
        (
            {"send_task_kwargs": {"countdown": "soon"}},
            "listeners[0].send_task_kwargs.countdown",
            "not of type",
        ),
        (
            {"send_task_kwargs": {"task_id": 5}},
            "listeners[0].send_task_kwargs.task_id",
            "not of type",
        ),
        ({"send_task_kwargs": {"task_id": ""}}, "listeners[0].send_task_kwargs.task_id", "''"),
        ({"timeout": 0}, "listeners[0].timeout", "0"),
        ({"broker": "amqp://"}, "listeners[0].broker", "broker_url"),
    ],
)
def test_bad_options_are_config_errors_with_their_path(options, path, message):
    definition = {"kind": "celery", "event_name": "e", "task_name": "t", **options}
    if definition["task_name"] is None:
        del definition["task_name"]
        message = "'task_name' is a required property"
        path = "listeners[0]"
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[definition])
    assert info.value.path == path
    assert message in info.value.message


def test_a_task_id_that_is_not_text_is_a_config_error_in_python_too():
    with pytest.raises(ConfigError) as info:
        CeleryListener("e", task_name="t", send_task_kargs={"task_id": 7})
    assert info.value.path == "send_task_kargs.task_id"
    assert "leave it out" in info.value.message


def test_missing_task_name_in_python_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        CeleryListener("e", queue="q")
    assert info.value.path == "task_name"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            raised_from(
                kombu.exceptions.OperationalError("refused"), ConnectionRefusedError(111, "x")
            ),
            ConnectError,
        ),
        (
            raised_from(kombu.exceptions.OperationalError("t"), socket.timeout("timed out")),
            DeliveryTimeout,
        ),
        (kombu.exceptions.OperationalError("no cause"), ConnectError),
        (
            raised_from(
                kombu.exceptions.OperationalError("pool"), kombu.exceptions.LimitExceeded(10)
            ),
            DeliveryTimeout,
        ),
        (amqp.exceptions.ConnectionError("lost"), ConnectError),
        (
            amqp.exceptions.RecoverableConnectionError("basic_publish: connection closed"),
            ConnectError,
        ),
        (amqp.exceptions.RecoverableConnectionError("basic_publish: timed out"), DeliveryTimeout),
        (amqp.exceptions.ConnectionForced("broker shutdown"), ConnectError),
        (amqp.exceptions.AccessRefused("login refused"), Rejected),
        (amqp.exceptions.NotAllowed("vhost not found"), Rejected),
        (amqp.exceptions.NotFound("no exchange"), Rejected),
        (amqp.exceptions.MessageNacked(), Rejected),
        (redis.exceptions.ConnectionError("Error 111 connecting"), ConnectError),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), DeliveryTimeout),
        (redis.exceptions.AuthenticationError("invalid password"), Rejected),
        (redis.exceptions.ResponseError("OOM command not allowed"), Rejected),
        (socket.timeout("timed out"), DeliveryTimeout),
        (TimeoutError(), DeliveryTimeout),
        (ConnectionRefusedError(111, "Connection refused"), ConnectError),
        (ConnectionResetError(104, "reset"), ConnectError),
        (BrokenPipeError(32, "broken pipe"), ConnectError),
        (socket.gaierror(-2, "Name or service not known"), ConnectError),
        (OSError("Server unexpectedly closed connection"), ConnectError),
        (
            kombu.exceptions.EncodeError("Object of type object is not JSON serializable"),
            TemplateError,
        ),
        (ValueError("something else"), DeliveryError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_translate_error_maps_every_driver_error_we_know(error, expected):
    translated = translate_error(error, "broker amqp://guest:***@h:5672//")
    assert type(translated) is expected
    if expected is not TemplateError:
        assert "broker amqp://guest:***@h:5672//" in str(translated)


# -- which Celery app, from the command line ----------------------------------------------------


def celery_project(tmp_path: Path, worker: CeleryWorker, **top: Any) -> Path:
    """A project directory as a user has one: ``proj_celery.py`` defining ``app`` on the
    worker's broker, and ``events.json`` with a celery listener that has no ``broker_url``."""
    (tmp_path / "proj_celery.py").write_text(
        f"import celery\n\napp = celery.Celery('proj', broker={worker.url!r})\n"
    )
    listener = {"kind": "celery", "name": "task", "event_name": "e", "task_name": RECORD_TASK,
                "queue": worker.queue(), "task_args": ["{event_data}"]}  # fmt: skip
    (tmp_path / "events.json").write_text(json.dumps({"listeners": [listener], **top}))
    return tmp_path


def eventisc_in(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The ``eventisc`` command run in ``directory``, as a user runs it in a project."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTISC_", "CELERY_"))}
    command = [str(Path(sys.executable).with_name("eventisc")), *args]
    return subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=60, env={**full_env, **env}
    )


def task_id(stdout: str) -> str:
    """The id of the task ``eventisc trigger`` printed as sent."""
    match = re.search(r"delivered: (sent task [0-9a-f]{32})", stdout)
    assert match, stdout
    return match[1]


def test_trigger_with_celery_app_sends_through_the_named_app(celery_worker, tmp_path):
    project = celery_project(tmp_path, celery_worker)
    result = eventisc_in(project, "trigger", "events.json", "e", "--data", '{"n": 1}',
                         "--celery-app", "proj_celery:app")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert celery_worker.sent(task_id(result.stdout))["args"] == [{"n": 1}]
    assert "set_default()" not in result.stderr and "fallback" not in result.stderr


@rabbitmq_only
def test_the_config_celery_app_serves_spool_replay(celery_worker, tmp_path):
    # Given a dead notification of a celery listener without broker_url, in a project whose
    # config names its Celery app,
    project = celery_project(
        tmp_path, celery_worker, celery_app="proj_celery:app", spool=str(tmp_path / "s.db")
    )
    (definition,) = json.loads((project / "events.json").read_text())["listeners"]
    notification = CeleryListener.from_config(definition).render("e", {"n": 2})
    Spool(tmp_path / "s.db").add(notification, state="dead", reason="failed", error="x")
    # when the spool is replayed from the project's directory, the task goes through that app.
    result = eventisc_in(project, "spool", "replay", "events.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 delivered" in result.stdout
    assert celery_worker.sent(f"sent task {notification.id}")["args"] == [{"n": 2}]


@rabbitmq_only
def test_celery_broker_url_serves_a_listener_without_an_app(celery_worker, tmp_path):
    project = celery_project(tmp_path, celery_worker)
    env = {"CELERY_BROKER_URL": celery_worker.url}
    result = eventisc_in(project, "trigger", "events.json", "e", "--data", '{"n": 3}', **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert celery_worker.sent(task_id(result.stdout))["args"] == [{"n": 3}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("proj_celery", "is not MODULE:ATTRIBUTE"),
        ("no_such_module:app", "cannot import 'no_such_module'"),
        ("proj_celery:nope", "module 'proj_celery' has no 'nope'"),
        ("proj_celery:celery", "'proj_celery:celery' is not a Celery app but <module"),
    ],
)
def test_a_bad_celery_app_is_a_config_error_at_load(tmp_path, spec, message):
    (tmp_path / "proj_celery.py").write_text("import celery\n\napp = celery.Celery('proj')\n")
    (tmp_path / "events.json").write_text(json.dumps({"listeners": [
        {"kind": "celery", "event_name": "e", "task_name": "t"}]}))  # fmt: skip
    result = eventisc_in(tmp_path, "check", "events.json", "--celery-app", spec)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_task_arguments_holding_objects_json_cannot_reach_the_worker(celery_worker, listeners):
    # Given event data with a dataclass, a set, an object with to_dict() and a datetime,
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Dictable:
        def to_dict(self):
            return {"id": 7}

    at = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    listener = celery_listener(celery_worker, queue=celery_worker.queue())
    listeners.append(listener)
    data = {"point": Point(1, 2), "tags": {"b", "a"}, "user": Dictable(), "at": at}
    # when the default task_kwargs send it whole,
    received = celery_worker.sent(send(listener, "e", data))
    # then what kombu's JSON cannot write arrives converted, and the datetime as itself.
    assert received["kwargs"]["event_data"] == {
        "point": {"x": 1, "y": 2},
        "tags": ["a", "b"],
        "user": {"id": 7},
        "at": at,
    }
