"""RabbitMQ: 200-byte JSON messages, confirms off and on, sync and background, vs raw pika."""

from __future__ import annotations

import collections
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika

import eventisc

from ..harness import Check, Context, Run, Series, Skip, Table, alternate, row, speedup
from ..support import RABBITMQ, require, wait_for

__all__ = ["SETTLE", "Pipelined", "rabbit"]

URL = f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/%2F"
WORKERS = 8
WINDOW = 1000
PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=2)
EVENT_NAME = "shop.order_paid"
#: The queues are not durable (the messages are persistent): on this machine a durable queue
#: makes the broker's disk the limit (~22,000 confirmed msg/s for any client), which would hide
#: the clients' own cost; the durable case has a table of its own.
DURABLE = False
#: Seconds between two runs: the broker deletes the last run's queue (20,000 messages) meanwhile,
#: instead of while the next variant is timed.
SETTLE = 1.0


def event_data(size: int = 200) -> dict[str, Any]:
    """Event data whose JSON encoding is exactly ``size`` bytes."""
    data: dict[str, Any] = {"id": 123456, "user": "ada@example.com", "total": 99.5, "pad": ""}
    data["pad"] = "x" * (size - len(json.dumps(data)))
    assert len(json.dumps(data)) == size
    return data


DATA = event_data()


@contextlib.contextmanager
def fresh_queue() -> Iterator[str]:
    """A new queue name, deleted afterwards whatever happens."""
    name = f"eventisc-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        cleanup(lambda: _delete(name))


def _delete(queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        conn.channel().queue_delete(queue)
    finally:
        conn.close()


def cleanup(delete: Callable[[], None]) -> None:
    """Delete what a repetition declared, waiting for the broker if it is restarting: never
    leave a queue behind."""
    for attempt in range(3):
        try:
            delete()
            return
        except Exception:
            if attempt == 2:
                raise
            with contextlib.suppress(Skip):
                wait_for("RabbitMQ", RABBITMQ)


def message_count(queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def _checked(n: int, exact: bool, fn: Callable[[str], float]) -> Run:
    """Run ``fn(queue)`` on a fresh queue; check the queue then holds ``n`` messages."""
    with fresh_queue() as queue:
        seconds = fn(queue)
        got = message_count(queue)
        if not exact and got < n:  # unconfirmed: the last ones may still be on their way
            time.sleep(0.5)
            got = message_count(queue)
    return Run(n, seconds, "" if got == n else f"queue held {got} of {n} in one repetition")


def raw_blocking(n: int, confirm: bool) -> Run:
    """A BlockingConnection publishing in a loop (with confirms: one round trip each)."""

    def go(queue: str) -> float:
        start = time.perf_counter()
        conn = pika.BlockingConnection(pika.URLParameters(URL))
        channel = conn.channel()
        if confirm:
            channel.confirm_delivery()
        channel.queue_declare(queue, durable=DURABLE)
        for _ in range(n):
            channel.basic_publish("", queue, json.dumps(DATA).encode(), PROPERTIES)
        seconds = time.perf_counter() - start
        conn.close()
        return seconds

    return _checked(n, confirm, go)


class Pipelined:
    """A raw pipelined publisher: SelectConnection, publisher confirms, up to ``window``
    messages in flight, acks counted with ``multiple``."""

    def __init__(
        self,
        queue: str,
        n: int,
        window: int = WINDOW,
        durable: bool = DURABLE,
        timeout: float = 300,
    ):
        self.queue, self.n, self.window, self.timeout = queue, n, window, timeout
        self.durable = durable
        self.published = 0
        self.confirmed = 0
        self.nacked = 0
        self.unconfirmed: collections.deque[int] = collections.deque()
        self.error: str = ""
        self.channel: Any = None

    def run(self) -> float:
        start = time.perf_counter()
        self.conn = pika.SelectConnection(
            pika.URLParameters(URL),
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel),
            on_open_error_callback=lambda c, e: self._fail(f"cannot connect: {e!r}"),
            on_close_callback=lambda c, e: c.ioloop.stop(),
        )
        self.conn.ioloop.call_later(self.timeout, lambda: self._fail("timed out"))
        self.conn.ioloop.start()
        if self.error:
            raise RuntimeError(f"pipelined publisher: {self.error}")
        return self.end - start

    def _fail(self, error: str) -> None:
        self.error = error
        if self.conn.is_open:
            self.conn.close()
        else:
            self.conn.ioloop.stop()

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(
            ack_nack_callback=self._on_confirm,
            callback=lambda _: channel.queue_declare(
                self.queue, durable=self.durable, callback=lambda _: self._publish()
            ),
        )

    def _publish(self) -> None:
        while self.published < self.n and len(self.unconfirmed) < self.window:
            self.channel.basic_publish("", self.queue, json.dumps(DATA).encode(), PROPERTIES)
            self.published += 1
            self.unconfirmed.append(self.published)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        if isinstance(method, pika.spec.Basic.Nack):
            self.nacked += 1
        if method.multiple:
            while self.unconfirmed and self.unconfirmed[0] <= tag:
                self.unconfirmed.popleft()
                self.confirmed += 1
        else:
            self.unconfirmed.remove(tag)
            self.confirmed += 1
        if self.confirmed >= self.n:
            self.end = time.perf_counter()
            self.conn.close()
        else:
            self._publish()


def raw_pipelined(n: int, durable: bool = DURABLE) -> Run:
    return _checked(n, True, lambda queue: Pipelined(queue, n, durable=durable).run())


def _listener(queue: str, confirm: bool, durable: bool = DURABLE) -> dict[str, Any]:
    return {
        "kind": "rabbit",
        "event_name": EVENT_NAME,
        "url": URL,
        "queue_kwargs": {"queue": {"queue": queue, "durable": durable}},
        "confirm": confirm,
    }


def ours(n: int, confirm: bool, background: bool, durable: bool = DURABLE) -> Run:
    def go(queue: str) -> float:
        options: dict[str, Any] = {}
        if background:
            # A queue for every message: the trigger loop outruns delivery, and a full queue
            # would block (then drop) instead of measuring throughput.
            dispatcher = {"max_workers": WORKERS, "queue_size": max(10_000, n)}
            options = {"delivery": "background", "dispatcher": dispatcher}
        app = eventisc.create_app(listeners=[_listener(queue, confirm, durable)], **options)
        try:
            start = time.perf_counter()
            sent = sum(app.trigger(EVENT_NAME, DATA) for _ in range(n))
            if background and not app.flush(timeout=300):
                raise RuntimeError("flush() timed out")
            seconds = time.perf_counter() - start
        finally:
            app.close()
        if sent != n:
            raise RuntimeError(f"only {sent} of {n} accepted")
        return seconds

    return _checked(n, confirm, go)


def _runs(ctx: Context, variants: dict[str, Callable[[], Run]]) -> dict[str, Series]:
    """Alternate the variants against the broker: waiting for it when someone restarts it,
    pausing between runs while it deletes the last queue."""
    return alternate(
        variants,
        ctx.reps,
        progress=ctx.log,
        recover=lambda: wait_for("RabbitMQ", RABBITMQ),
        settle=SETTLE,
    )


def legacy(ctx: Context, n: int) -> Run:
    def go(queue: str) -> float:
        answer = ctx.legacy_call(
            {
                "op": "rabbit",
                "url": URL,
                "queue": queue,
                "data": DATA,
                "count": n,
                "durable": DURABLE,
            }
        )
        return float(answer["seconds"])

    return _checked(n, False, go)


POOLED_ANALYSIS = (
    "This build's `rabbit` listener delivers in the background as in sync mode: one "
    "`basic_publish` on a pooled `BlockingConnection` that waits for its own confirm before "
    f"the worker takes the next notification, so at most {WORKERS} messages are in flight "
    f"(one per worker) against {WINDOW:,} for the pipelined publisher, and the workers contend "
    "for the GIL. Closing the gap needs pipelined publishing in the listener: many messages "
    "on one channel, confirms awaited together (acks with `multiple`), each delivery finished "
    "as its ack or nack arrives."
)

PIPELINED_ANALYSIS = (
    "This build's `rabbit` listener pipelines background publishes (`deliver_async`, one "
    "connection, many confirms in flight). What is left is per message: the trigger in the "
    "caller's thread (render, queue), a worker taking it off the queue and handing it to the "
    "publisher's I/O thread, and the completion callback, three threads sharing one GIL "
    "where the raw publisher runs everything in one loop. See the profile below."
)

CONFIRMS_OFF_ANALYSIS = (
    "pika's `basic_publish` is the same in both; what eventisc adds per message is its own "
    "Python around it: `trigger`/`_fire` (routing, metrics counters and the latency "
    "histogram's lock), `render` (the JSON body through `eventisc.encoding`, the payload "
    "dict, a `Notification`), and the pool's `checkout`/`checkin` (a lock, the age checks). "
    "About 2–4 µs in a micro benchmark, but 10–15 µs in this loop, where pika's much larger "
    "code path between two triggers evicts ours from the CPU caches. Closing the gap: a "
    "thread-local channel fast path instead of a pool checkout for `confirm: false`, a "
    "lock-free latency histogram, and fewer call layers between `trigger` and "
    "`basic_publish`."
)


CONFIRMS_ON_ANALYSIS = (
    "Each side waits for one confirm round trip per message; eventisc adds the trigger path, "
    "`render` and the pool checkout/checkin of the confirms-off case, plus a timer on pika's "
    "I/O loop that bounds the wait for the confirm by the listener's `timeout` "
    "(`call_later` and `remove_timeout` around every publish). With a non-durable queue a "
    "round trip is short (~0.2 ms here), so these ~10 µs are a few percent; a side-by-side "
    "of 5,000 messages measured 186 µs raw and 193 µs ours (0.96×). Closing a steady gap: one "
    "long-lived timer checking a deadline instead of a timer per publish, and the fast path "
    "described for confirms off."
)


def _background_analysis() -> str:
    from eventisc.listeners.rabbit import RabbitListener

    return PIPELINED_ANALYSIS if hasattr(RabbitListener, "deliver_async") else POOLED_ANALYSIS


def rabbit(ctx: Context) -> list[Table]:
    require("RabbitMQ", RABBITMQ)
    n = ctx.scale(20_000, 2_000)
    off = Table(
        "rabbit-off",
        "RabbitMQ, confirms off",
        f"{n:,} persistent 200-byte JSON messages per repetition to a fresh non-durable queue "
        "(deleted afterwards; the durable table below says why), through a `rabbit` listener "
        "with `confirm: false` vs raw pika "
        "(`BlockingConnection`, `basic_publish` in a loop, the JSON encoded per message). "
        "event-isc 0.1.0 publishes unconfirmed, non-persistent messages in its own process. "
        "Messages per second; the queue's message count is checked after each repetition.",
    )
    ctx.log(f"RabbitMQ, confirms off, {n} messages")
    s = _runs(
        ctx,
        {
            "raw": lambda: raw_blocking(n, confirm=False),
            "ours": lambda: ours(n, confirm=False, background=False),
            "ours bg": lambda: ours(n, confirm=False, background=True),
            "event-isc": lambda: legacy(ctx, n),
        },
    )
    off.rows += [
        row("raw pika BlockingConnection, no confirms", s["raw"], rate=True),
        row(
            "ours, sync, confirm: false",
            s["ours"],
            rate=True,
            checks=[
                Check(
                    "confirms off, sync vs raw",
                    speedup(s["ours"], s["raw"]),
                    ">=",
                    0.9,
                    explanation=CONFIRMS_OFF_ANALYSIS,
                    profile=lambda: ours(n, False, False),
                ),
                Check("confirms off, sync vs event-isc", speedup(s["ours"], s["event-isc"]), "", 0),
            ],
        ),
        row(
            f"ours, background ({WORKERS} workers), confirm: false",
            s["ours bg"],
            rate=True,
            checks=[
                Check("confirms off, background vs raw", speedup(s["ours bg"], s["raw"]), "", 0)
            ],
        ),
        row("event-isc 0.1.0 (unconfirmed)", s["event-isc"], rate=True),
    ]
    on = Table(
        "rabbit-on",
        "RabbitMQ, confirms on",
        f"The same {n:,} messages with publisher confirms: sync (each trigger waits for its "
        "confirm) vs raw pika `BlockingConnection` with `confirm_delivery()`; background "
        f"(`delivery: background`, {WORKERS} workers, a queue_size of {max(10_000, n):,} so "
        "no event waits for room; timed until `flush()` returns, every "
        "message confirmed) vs a raw pipelined publisher: pika `SelectConnection`, up to "
        f"{WINDOW:,} messages in flight, acks counted with `multiple`.",
    )
    ctx.log(f"RabbitMQ, confirms on, {n} messages")
    s = _runs(
        ctx,
        {
            "raw": lambda: raw_blocking(n, confirm=True),
            "ours": lambda: ours(n, confirm=True, background=False),
            "pipelined": lambda: raw_pipelined(n),
            "ours bg": lambda: ours(n, confirm=True, background=True),
        },
    )
    on.rows += [
        row("raw pika BlockingConnection, confirm_delivery", s["raw"], rate=True),
        row(
            "ours, sync, confirm: true",
            s["ours"],
            rate=True,
            checks=[
                Check(
                    "confirms on, sync vs raw",
                    speedup(s["ours"], s["raw"]),
                    ">=",
                    0.9,
                    explanation=CONFIRMS_ON_ANALYSIS,
                    profile=lambda: ours(n, True, False),
                ),
            ],
        ),
        row(f"raw pipelined SelectConnection ({WINDOW:,} in flight)", s["pipelined"], rate=True),
        row(
            f"ours, background ({WORKERS} workers), confirm: true",
            s["ours bg"],
            rate=True,
            checks=[
                Check(
                    "confirms on, background vs raw pipelined",
                    speedup(s["ours bg"], s["pipelined"]),
                    ">=",
                    0.7,
                    explanation=_background_analysis(),
                    profile=lambda: ours(n // 4, True, True),
                )
            ],
        ),
    ]
    if not any(x.costs for x in s.values()):
        raise Skip("no RabbitMQ variant could run")
    durable = Table(
        "rabbit-durable",
        "RabbitMQ, confirms on, durable queue",
        "The background case again with a durable queue: the broker writes every persistent "
        "message to disk before confirming it, and that, not the client, sets the pace on this "
        "machine.",
    )
    ctx.log(f"RabbitMQ, confirms on, durable queue, {n} messages")
    s = _runs(
        ctx,
        {
            "pipelined": lambda: raw_pipelined(n, durable=True),
            "ours bg": lambda: ours(n, confirm=True, background=True, durable=True),
        },
    )
    durable.rows += [
        row(f"raw pipelined SelectConnection ({WINDOW:,} in flight)", s["pipelined"], rate=True),
        row(f"ours, background ({WORKERS} workers), confirm: true", s["ours bg"], rate=True,
            checks=[Check("durable queue: background vs raw pipelined",
                          speedup(s["ours bg"], s["pipelined"]), "", 0)]),
    ]  # fmt: skip
    return [off, on, durable]
