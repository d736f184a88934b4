"""Delivery on Celery workers against a slow receiver: one worker, two workers, and the
in-process background dispatcher at the same total concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import eventisc

from ..harness import Check, Context, Run, Skip, Table, alternate, row, speedup
from ..support import RABBITMQ, Receiver, receiver, require, wait_for
from .celery_send import BROKERS, fresh_queue
from .rabbit import DATA, SETTLE

__all__ = ["celery_workers"]

EVENT_NAME = "shop.order_paid"
#: The receiver's answer time, seconds.
DELAY = 0.02
#: Pool processes of each worker (``--concurrency``).
CONCURRENCY = 4
#: Seconds a worker may take to take its first task.
START_TIMEOUT = 60.0
#: Seconds one repetition may take.
RUN_TIMEOUT = 300.0


def _listener(r: Receiver) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": "billing",
        "event_name": EVENT_NAME,
        "url": f"{r.url}/hook",
        "data": "{event_data}",
    }


def _config(folder: Path, r: Receiver, queue: str) -> Path:
    url = BROKERS["RabbitMQ"][0]
    path = folder / f"{queue}.json"
    config = {
        "delivery": "celery",
        "celery_delivery": {"broker_url": url, "queue": queue},
        "listeners": [_listener(r)],
    }
    path.write_text(json.dumps(config))
    return path


class _Fleet:
    """Worker processes started as the manual says (``celery -A eventisc.worker worker -Q
    QUEUE``, ``EVENTISC_CONFIG``), all on one queue; a service app handing notifications to
    them."""

    def __init__(self, folder: Path, r: Receiver, queue: str, workers: int):
        self.receiver = r
        self.config = _config(folder, r, queue)
        env = {**os.environ, "EVENTISC_CONFIG": str(self.config)}
        env.pop("CELERY_BROKER_URL", None)
        env.pop("EVENTISC_METRICS_PORT", None)
        self.processes = []
        for number in range(workers):
            command = [
                *(sys.executable, "-m", "celery", "-A", "eventisc.worker", "worker"),
                *("-Q", queue, "-n", f"bench{number}-{queue}@%h"),
                *("--concurrency", str(CONCURRENCY), "--loglevel", "WARNING"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ]
            log = (folder / f"{queue}-{number}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        self.app = eventisc.create_app(config_file=str(self.config))

    def deliver(self, n: int) -> float:
        """Seconds from the first hand-off until the receiver got all ``n``."""
        target = self.receiver.count() + n
        start = time.perf_counter()
        for _ in range(n):
            self.app.trigger(EVENT_NAME, DATA)
        deadline = time.monotonic() + RUN_TIMEOUT
        while self.receiver.count() < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not deliver {n} within {RUN_TIMEOUT:.0f}s")
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError("a worker process ended")
            time.sleep(0.005)
        return time.perf_counter() - start

    def wait_started(self) -> None:
        """Until every worker took a task (each gets one more than the others can hold)."""
        deadline = time.monotonic() + START_TIMEOUT
        target = self.receiver.count() + len(self.processes) * CONCURRENCY * 4
        for _ in range(len(self.processes) * CONCURRENCY * 4):
            self.app.trigger(EVENT_NAME, DATA)
        while self.receiver.count() < target:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("the Celery workers did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.app.close()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(10)


@contextlib.contextmanager
def _fleet(folder: Path, r: Receiver, workers: int) -> Iterator[_Fleet]:
    with fresh_queue("RabbitMQ") as queue:
        fleet = _Fleet(folder, r, queue, workers)
        try:
            yield fleet
        finally:
            fleet.close()


def _background(r: Receiver, n: int) -> float:
    """The in-process dispatcher, as many threads as the two workers' processes: seconds
    from the first trigger until ``flush()`` returns."""
    threads = 2 * CONCURRENCY
    app = eventisc.create_app(
        listeners=[_listener(r)],
        delivery="background",
        dispatcher={"min_workers": threads, "max_workers": threads},
    )
    try:
        start = time.perf_counter()
        for _ in range(n):
            app.trigger(EVENT_NAME, DATA)
        if not app.flush(timeout=RUN_TIMEOUT):
            raise RuntimeError("flush() timed out")
        return time.perf_counter() - start
    finally:
        app.close()


def _counted(r: Receiver, n: int, seconds: float, before: int) -> Run:
    got = r.count() - before
    return Run(n, seconds, "" if got >= n else f"receiver got {got} of {n} in one repetition")


WORKERS_ANALYSIS = (
    "Each delivery holds one pool process for the receiver's 20 ms, so one worker of "
    f"{CONCURRENCY} processes tops out near {CONCURRENCY / DELAY:.0f}/s and two near "
    f"{2 * CONCURRENCY / DELAY:.0f}/s; what a worker process spends around each delivery "
    "(Celery's task protocol, the ack, the HTTP request) comes on top of the 20 ms. On a "
    "shared 2-core machine the two workers' 8 processes, the receiver and the process handing "
    "off share the cores, which the in-process dispatcher (one process, 8 threads) does not "
    "pay: the ratios here are a floor of what separate machines give."
)


def celery_workers(ctx: Context) -> list[Table]:
    try:
        import celery as _  # noqa: F401
    except ImportError as exc:
        raise Skip(f"celery is not installed: {exc}") from None
    require("RabbitMQ", RABBITMQ)
    n = ctx.scale(2000, 600)
    table = Table(
        "celery-workers",
        "Delivery on Celery workers, 20 ms receiver",
        f"{n:,} notifications per repetition (an http listener, the 200-byte event data as "
        f"its JSON body) to a receiver in another process that answers in {DELAY * 1000:.0f} "
        "ms. Workers: started once as the manual says (`celery -A eventisc.worker worker -Q "
        f"QUEUE --concurrency {CONCURRENCY}`, `EVENTISC_CONFIG`), one on a queue of its own, "
        "two on another; the service hands each notification off with `trigger` (`delivery: "
        "celery`, publisher confirms). Background: one process, `delivery: background` with "
        f"{2 * CONCURRENCY} dispatcher threads (the two workers' processes). Deliveries per "
        "second, from the first hand-off (or trigger) until the receiver got the last one; "
        "the receiver's count is checked after every repetition.",
    )
    with tempfile.TemporaryDirectory(prefix="eventisc-bench-") as folder, receiver(DELAY) as r:
        ctx.log("Celery workers: starting one worker, then two")
        with _fleet(Path(folder), r, 1) as one, _fleet(Path(folder), r, 2) as two:
            one.wait_started()
            two.wait_started()

            def run(fleet: _Fleet) -> Run:
                before = r.count()
                return _counted(r, n, fleet.deliver(n), before)

            def background() -> Run:
                before = r.count()
                return _counted(r, n, _background(r, n), before)

            ctx.log(f"Celery workers, {n} notifications per repetition")
            s = alternate(
                {
                    "one": lambda: run(one),
                    "two": lambda: run(two),
                    "background": background,
                },
                ctx.reps,
                progress=ctx.log,
                recover=lambda: wait_for("RabbitMQ", RABBITMQ),
                settle=SETTLE,
            )
    table.rows += [
        row(f"background dispatcher, {2 * CONCURRENCY} threads", s["background"], rate=True),
        row(f"one worker, {CONCURRENCY} processes", s["one"], rate=True),
        row(
            f"two workers, {CONCURRENCY} processes each",
            s["two"],
            rate=True,
            checks=[
                Check(
                    "two workers vs one",
                    speedup(s["two"], s["one"]),
                    ">=",
                    1.7,
                    explanation=WORKERS_ANALYSIS,
                ),
                Check(
                    "two workers vs background, same concurrency",
                    speedup(s["two"], s["background"]),
                    ">=",
                    0.8,
                    explanation=WORKERS_ANALYSIS,
                ),
            ],
        ),
    ]
    return [table]
