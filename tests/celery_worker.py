"""A real Celery worker for tests, in this process, on RabbitMQ or on Redis.

    with run_worker("rabbitmq", broker_url("rabbitmq")) as worker:
        listener = CeleryListener("e", task_name=RECORD_TASK, queue=worker.queue(),
                                  broker_url=worker.url)
        detail = listener.deliver(listener.render("e", {"n": 1}))  # "sent task <id>"
        received = worker.sent(detail)  # what the task ran with: name, args, kwargs, queue

The worker (``celery.contrib.testing.worker.start_worker``) consumes a set of queues unique to
the run; :meth:`CeleryWorker.queue` hands out one that no other test uses. It runs two tasks,
:data:`RECORD_TASK` and :data:`OTHER_TASK`, which record what they received in
:attr:`CeleryWorker.recorder`; a test waits for a task by id (:meth:`CeleryWorker.sent`,
:meth:`Recorder.wait`) or for a number of new tasks (:meth:`Recorder.wait_new`). Its queues
are deleted afterwards.

conftest.py's ``celery_worker`` fixture starts one worker per broker for a test module. Only
one worker may run at a time in a process: two in-process workers share Celery's global state
(event loop, shutdown flag) and stall each other, so :func:`run_worker` refuses a second one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import celery
import celery._state
import celery.worker.state
import kombu
import pytest
import redis
from celery.contrib.testing.worker import TestWorkController, start_worker

from .conftest import RABBITMQ_HOST, RABBITMQ_PORT, REDIS_HOST, REDIS_PORT, require_service

__all__ = [
    "BROKERS",
    "OTHER_TASK",
    "QUEUES_PER_WORKER",
    "RECORD_TASK",
    "CeleryWorker",
    "Recorder",
    "broker_url",
    "rabbitmq_only",
    "run_worker",
]

#: The brokers a worker runs on.
BROKERS = ("rabbitmq", "redis")
#: The tasks the worker runs; both record what they received.
RECORD_TASK = "eventisc_test.record"
OTHER_TASK = "eventisc_test.other"
#: Queues each worker consumes; every test takes the ones it uses from this pool.
QUEUES_PER_WORKER = 24

#: For tests about one broker only: ``@rabbitmq_only`` on a test using ``celery_worker``.
rabbitmq_only = pytest.mark.parametrize("celery_worker", ["rabbitmq"], indirect=True)

_running = threading.Lock()


def broker_url(name: str) -> str:
    """The URL of the test broker ``name`` ("rabbitmq" or "redis"), pinged first: skip the test
    when it does not answer (fail under CI=true)."""
    if name == "rabbitmq":
        require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
        return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"
    if name == "redis":
        require_service("Redis", REDIS_HOST, REDIS_PORT)
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"
    raise ValueError(f"no test broker {name!r}: use one of {BROKERS}")


class Recorder:
    """What the worker's tasks received, by task id. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.calls: dict[str, dict[str, Any]] = {}

    def add(self, task_id: str, record: dict[str, Any]) -> None:
        with self._cond:
            self.calls[task_id] = record
            self._cond.notify_all()

    def wait(self, task_id: str, timeout: float = 10) -> dict[str, Any]:
        """What task ``task_id`` received; fails the test if it did not run within ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: task_id in self.calls, timeout):
                pytest.fail(f"the worker did not run task {task_id} within {timeout}s")
            return self.calls[task_id]

    def ids(self) -> set[str]:
        """The ids of the tasks run so far (to pass to :meth:`wait_new` later)."""
        with self._cond:
            return set(self.calls)

    def wait_new(self, before: set[str], count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """What the tasks run since ``before`` (from :meth:`ids`) received, once ``count`` of
        them ran; fails the test if fewer ran within ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(set(self.calls) - before) >= count, timeout):
                ran = len(set(self.calls) - before)
                pytest.fail(f"the worker ran {ran} of {count} new tasks within {timeout}s")
            return [record for task_id, record in self.calls.items() if task_id not in before]


@dataclass
class CeleryWorker:
    """A running worker: its broker's ``name`` and ``url``, its Celery ``app``, what its tasks
    received (``recorder``) and the queues not handed out yet."""

    name: str
    url: str
    app: celery.Celery
    recorder: Recorder
    queues: list[str] = field(default_factory=list)

    def queue(self) -> str:
        """A queue the worker consumes that no other test uses."""
        return self.queues.pop()

    def sent(self, detail: str, timeout: float = 10) -> dict[str, Any]:
        """What the worker received for the task ``deliver`` reported as sent
        (``"sent task <id>"``)."""
        assert detail.startswith("sent task "), detail
        return self.recorder.wait(detail.split()[-1], timeout)


def make_worker_app(url: str, default_queue: str, recorder: Recorder) -> celery.Celery:
    """The worker's Celery app on ``url``, with the two recording tasks."""
    app = celery.Celery("eventisc-test", broker=url, set_as_current=False, fixups=[])
    app.conf.update(
        task_default_queue=default_queue,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
    )

    def record(self: Any, *args: Any, **kwargs: Any) -> None:
        recorder.add(
            self.request.id,
            {
                "name": self.name,
                "args": list(args),
                "kwargs": kwargs,
                "queue": (self.request.delivery_info or {}).get("routing_key"),
                "expires": self.request.expires,
                "argsrepr": self.request.argsrepr,
                "kwargsrepr": self.request.kwargsrepr,
            },
        )

    for name in (RECORD_TASK, OTHER_TASK):
        app.task(name=name, bind=True, shared=False)(record)
    return app


class BlockingLoopWorker(TestWorkController):
    """The test worker on Celery's blocking loop (``synloop``).

    In a thread, the event-loop worker misses AMQP deliveries that py-amqp already read into
    its buffer (a burst of tasks): they wait for the loop's next timeout, ~10 s. The blocking
    loop drains the buffer on every turn, and notices shutdown within 2 s.
    """

    def should_use_eventloop(self) -> bool:
        return False


@contextlib.contextmanager
def run_worker(name: str, url: str, queues: int = QUEUES_PER_WORKER) -> Iterator[CeleryWorker]:
    """Start a real worker on broker ``url`` (``name`` is "rabbitmq" or "redis") consuming
    ``queues`` queues of its own; stop it and delete its queues on exit.

    Raises RuntimeError if another worker runs in this process (see the module).
    """
    if not _running.acquire(blocking=False):
        raise RuntimeError("a Celery test worker already runs in this process: stop it first")
    try:
        yield from _run(name, url, queues)
    finally:
        _running.release()


def _run(name: str, url: str, count: int) -> Iterator[CeleryWorker]:
    token = uuid.uuid4().hex[:12]
    queues = [f"eventisc-test-{token}-{i}" for i in range(count)]
    recorder = Recorder()
    app = make_worker_app(url, queues[0], recorder)
    previous = celery._state.default_app
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    try:
        with start_worker(
            app,
            perform_ping_check=False,  # no celery.ping task: our tasks say the worker runs
            queues=queues,
            hostname=f"eventisc-test-{token}@localhost",
            shutdown_timeout=30,
            WorkController=BlockingLoopWorker,
        ):
            # start_worker set up logging as a worker does (root at ERROR, a stderr handler):
            # undo it, for caplog and for the tests that run after this one.
            root.setLevel(root_level)
            root.handlers[:] = root_handlers
            yield CeleryWorker(name, url, app, recorder, queues[1:])
            # Stop now rather than at the loop's next 2 s timeout: set the flag start_worker
            # sets on exit, then wake the loop with a message.
            celery.worker.state.should_terminate = 0
            app.send_task(OTHER_TASK, args=["wake up"], queue=queues[0])
    finally:
        celery._state.set_default_app(previous)  # start_worker made the test app the default
        _delete_queues(url, queues, token)


def _delete_queues(url: str, queues: list[str], token: str) -> None:
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match=f"*{token}*"):
                client.delete(key)
        finally:
            client.close()
        return
    with kombu.Connection(url, connect_timeout=5) as conn:
        channel = conn.default_channel
        for queue in queues:
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
