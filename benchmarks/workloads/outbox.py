"""The PostgreSQL outbox: writing in the caller's transaction, relay throughput and latency.

The relays run as users run them, ``eventisc relay CONFIG`` in processes of their own; every
table is a fresh one, dropped at the end. ``python -m benchmarks.workloads.outbox`` runs the
receiver of the latency table (it records when each POST arrived).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..harness import (
    Check,
    Context,
    Row,
    Run,
    Series,
    Skip,
    Table,
    alternate,
    fmt_cost,
    paired,
    row,
    speedup,
)
from ..support import RABBITMQ, ServerProcess, receiver, require, wait_for
from .micro import EVENT_DATA, EVENT_NAME, TEMPLATES

__all__ = ["outbox"]

POSTGRES = ("127.0.0.1", 5432)
POSTGRES_URL = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/test"
#: Deliveries at once: a relay's ``concurrency``, the background dispatcher's workers.
WORKERS = 8
#: Events per commit in the batched write rows.
BATCH = 100


# -- tables, apps, relays -----------------------------------------------------------------------


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise Skip("the outbox needs psycopg 3: pip install 'eventisc[postgres]'") from None
    return psycopg


def _recover() -> None:
    """Wait for PostgreSQL to answer again after a restart."""
    wait_for("PostgreSQL", POSTGRES)


def _admin(sql: str) -> None:
    with _psycopg().connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def fresh_table() -> Iterator[str]:
    """A new outbox table (eventisc's DDL), dropped afterwards whatever happens."""
    from eventisc.outbox.sql import ddl

    table = f"eventisc_bench_{uuid.uuid4().hex[:12]}"
    _admin(ddl(table))
    try:
        yield table
    finally:
        for attempt in range(3):  # never leave a table behind, even across a restart
            try:
                _admin(f"DROP TABLE IF EXISTS {table}")
                break
            except Exception:
                if attempt == 2:
                    raise
                with contextlib.suppress(Skip):
                    _recover()


def _http(url: str, name: str = "hook", data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "http",
        "name": name,
        "event_name": EVENT_NAME,
        "url": url,
        "data": TEMPLATES if data is None else data,
    }


def outbox_config(table: str, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    """One config for the writers and the relays of ``table`` (as users share one file)."""
    return {
        "delivery": "outbox",
        "outbox": {"url": POSTGRES_URL, "table": table},
        "listeners": listeners,
    }


def _app(config: dict[str, Any]) -> Any:
    import eventisc

    return eventisc.create_app(**config)


class Relays:
    """``eventisc relay CONFIG --concurrency N`` in ``count`` processes of their own.

    They run in a scratch directory with this eventisc first on the path (the tree the
    benchmark imports, as ``--baseline`` chooses it), their output in a log file shown when
    one dies. SIGTERM stops them (``shutdown_timeout`` lets them finish).
    """

    def __init__(self, config: dict[str, Any], count: int = 1, concurrency: int = WORKERS):
        import eventisc

        self.dir = tempfile.TemporaryDirectory(prefix="eventisc-bench-relay-")
        path = Path(self.dir.name) / "relay.json"
        path.write_text(json.dumps(config))
        package = str(Path(eventisc.__file__).resolve().parent.parent)
        paths = [package, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        command = [sys.executable, "-m", "eventisc", "relay", str(path)]
        command += ["--concurrency", str(concurrency)]
        self.logs = [Path(self.dir.name) / f"relay-{i}.log" for i in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        command,
                        cwd=self.dir.name,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )

    def cpu(self) -> float:
        """CPU seconds the relay processes have used so far (user + system)."""
        return sum(_process_cpu(proc.pid) for proc in self.procs)

    def check(self) -> None:
        """Raise RuntimeError (with its last output) when a relay has exited."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip()[-1500:]
                raise RuntimeError(f"a relay exited with status {proc.returncode}: {tail}")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.dir.cleanup()


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used; 0 where /proc cannot say."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_row(cpu: list[float]) -> str:
    """The median CPU time per row of a variant's repetitions (the warm-up left out)."""
    return fmt_cost(statistics.median(cpu[1:] or cpu)) if cpu else "n/a"


def share(s: Series, ceiling: float) -> str:
    """A throughput's median as a percentage of ``ceiling`` operations per second."""
    return f"{1 / s.median / ceiling:.0%}" if s.costs else "n/a"


def add_cpu_note(table: Table, variants: list[tuple[str, list[float]]]) -> None:
    """Note under ``table`` the CPU time per row each variant's processes used: where a
    relay's time goes when the machine's 2 cores are the limit."""
    parts = [f"{label} {cpu_per_row(cpu)}" for label, cpu in variants if cpu]
    if parts:
        table.notes.append("CPU time per row (median): " + "; ".join(parts) + ".")


@contextlib.contextmanager
def relays(config: dict[str, Any], count: int = 1, concurrency: int = WORKERS) -> Iterator[Relays]:
    r = Relays(config, count, concurrency)
    try:
        yield r
    finally:
        r.close()


class Pending:
    """Watches an outbox table until it is empty (every row delivered and recorded)."""

    def __init__(self, table: str):
        self.table = table
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        """An autocommit connection, made again after PostgreSQL restarted."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = _psycopg().connect(POSTGRES_URL, autocommit=True)
        return self._conn

    def wait_empty(self, relays: Relays, timeout: float = 300, every: float = 0.005) -> float:
        """Poll until the table has no row; the time (monotonic) it was first seen empty."""
        deadline = time.monotonic() + timeout
        query = f"SELECT EXISTS (SELECT 1 FROM {self.table})"
        execute = self.conn.execute
        while execute(query).fetchone()[0]:
            now = time.monotonic()
            if now > deadline:
                left = self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
                raise RuntimeError(f"{left} row(s) still in the outbox after {timeout:.0f} s")
            relays.check()
            time.sleep(every)
        return time.monotonic()

    def vacuum(self) -> None:
        """Clear the deleted rows (not timed): every repetition starts from the same table."""
        self.conn.execute(f"VACUUM {self.table}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def fill(app: Any, k: int) -> float:
    """Write ``k`` events through ``app`` in one transaction; the time (monotonic) just before
    the commit that makes them visible to the relays."""
    with _psycopg().connect(POSTGRES_URL) as conn:
        for _ in range(k):
            app.trigger(EVENT_NAME, EVENT_DATA, connection=conn)
        start = time.monotonic()
        conn.commit()
    return start


def _ratio(num: Series | None, den: Series | None) -> float | None:
    """``num``'s cost over ``den``'s, paired (see :func:`benchmarks.harness.paired`)."""
    if num is None or den is None or not num.costs or not den.costs:
        return None
    return paired(num, den)


# -- writing: trigger in the caller's transaction -----------------------------------------------


class Writes:
    """The write-side variants on one table: our trigger and the bare INSERT of the same row,
    each event followed by a commit (or every ``per`` events)."""

    def __init__(self, table: str):
        from eventisc.notification import new_id

        self.new_id = new_id
        self.table = table
        self.conn = _psycopg().connect(POSTGRES_URL)
        url = "http://127.0.0.1:9/hook"  # never called: rows only
        self.one = _app(outbox_config(table, [_http(url)]))
        self.five = _app(outbox_config(table, [_http(url, f"hook{i}") for i in range(5)]))
        # The row our trigger writes, read back: the bare INSERT writes the same values.
        self.one.trigger(EVENT_NAME, EVENT_DATA, connection=self.conn)
        self.conn.commit()
        self.row = self.conn.execute(
            f"SELECT listener, kind, event_name, payload FROM {table}"
        ).fetchone()
        self.insert = (
            f"INSERT INTO {table} (id, listener, kind, event_name, payload) "
            "VALUES (%s, %s, %s, %s, %s)"
        )
        self.truncate()

    def truncate(self) -> None:
        self.conn.execute(f"TRUNCATE {self.table}")
        self.conn.commit()

    def _timed(self, write: Callable[[], Any], n: int, per: int) -> float:
        if self.conn.closed or self.conn.broken:  # PostgreSQL restarted: a repetition again
            self.conn = _psycopg().connect(POSTGRES_URL)
            self.truncate()
        commit = self.conn.commit
        start = time.perf_counter()
        for i in range(1, n + 1):
            write()
            if i % per == 0:
                commit()
        commit()
        seconds = time.perf_counter() - start
        self.truncate()
        return seconds / n

    def bare(self, n: int, per: int = 1) -> float:
        insert, row, new_id = self.insert, self.row, self.new_id
        return self._timed(lambda: self.conn.execute(insert, (new_id(), *row)), n, per)

    def ours(self, n: int, per: int = 1, five: bool = False) -> float:
        trigger = (self.five if five else self.one).trigger
        return self._timed(lambda: trigger(EVENT_NAME, EVENT_DATA, connection=self.conn), n, per)

    def close(self) -> None:
        self.one.close()
        self.five.close()
        self.conn.close()


@contextlib.contextmanager
def writes() -> Iterator[Writes]:
    with fresh_table() as table:
        w = Writes(table)
        try:
            yield w
        finally:
            w.close()


def ours_write_profiled(n: int, per: int = 1) -> None:
    with writes() as w:
        w.ours(n, per)


WRITE_ANALYSIS = (
    "Both sides pay one round trip and the same commit (~0.3 ms here: compare the rows with "
    f"a commit every {BATCH} events); the gap is the statement and the trigger. eventisc "
    "writes a trigger's rows with one `INSERT ... VALUES` (plain parameters, up to 50 rows; "
    "arrays expanded with `unnest` beyond, or with ordering keys) wrapped in a CTE with "
    "`ON CONFLICT (id) DO NOTHING`, a counted `RETURNING` and `pg_notify` for the relays, "
    "and reads a result row back; the NOTIFY costs nothing measurable. The trigger path "
    "(routing, rendering the five fields, encoding the payload as JSON, the delivery record) "
    "adds ~40–70 µs. Measured apart before the VALUES form: psycopg adapting five "
    "one-element lists cost ~60 µs more than five strings (its list dumper escapes every "
    "quote of the JSON payload in Python), and PostgreSQL ran the `unnest` statement ~30 µs "
    "longer. Closing what is left: a cheaper encoding of the payload, or a prepared statement "
    "per row count."
)


def write_side(ctx: Context) -> Table:
    n = ctx.scale(2000, 500)
    table = Table(
        "outbox-write",
        "Outbox: trigger in the caller's transaction",
        f"`trigger(..., connection=conn)` with `delivery: outbox` (an http listener, the five "
        "templated fields), each event followed by `conn.commit()` on the same psycopg "
        "connection, vs a bare psycopg `INSERT ... VALUES` of the same row (the same columns "
        "and values, read back from a row eventisc wrote; a new id each time) and the same "
        f"commit. Then five listeners matching the event (five rows, one statement) vs one; "
        f"then a commit every {BATCH} events. {n:,} events per repetition; the table is "
        "emptied between repetitions. Cost per event, commit included.",
    )
    with writes() as w:
        ctx.log(f"outbox writes, {n} events per repetition, a commit each")
        s = alternate(
            {
                "bare": lambda: w.bare(n),
                "ours": lambda: w.ours(n),
                "ours 5": lambda: w.ours(n, five=True),
            },
            ctx.reps,
            progress=ctx.log,
            recover=_recover,
        )
        ctx.log(f"outbox writes, a commit every {BATCH} events")
        b = alternate(
            {
                "bare": lambda: w.bare(n, BATCH),
                "ours": lambda: w.ours(n, BATCH),
                "ours 5": lambda: w.ours(n, BATCH, five=True),
            },
            ctx.reps,
            progress=ctx.log,
            recover=_recover,
        )
    table.rows += [
        row("bare INSERT + commit", s["bare"]),
        row(
            "ours: trigger + commit, 1 listener",
            s["ours"],
            checks=[
                Check(
                    "outbox trigger + commit vs bare INSERT + commit",
                    _ratio(s["ours"], s["bare"]),
                    "<=",
                    1.3,
                    explanation=WRITE_ANALYSIS,
                    profile=lambda: ours_write_profiled(n),
                )
            ],
        ),
        row(
            "ours: trigger + commit, 5 listeners",
            s["ours 5"],
            checks=[Check("outbox: 5 listeners vs 1", _ratio(s["ours 5"], s["ours"]), "<=", 1.5)],
        ),
        row(f"bare INSERT, a commit every {BATCH}", b["bare"]),
        row(
            f"ours: trigger, a commit every {BATCH}, 1 listener",
            b["ours"],
            checks=[
                Check(
                    f"commit every {BATCH}: trigger vs bare INSERT",
                    _ratio(b["ours"], b["bare"]),
                    "",
                    0,
                )
            ],
        ),
        row(
            f"ours: trigger, a commit every {BATCH}, 5 listeners",
            b["ours 5"],
            checks=[
                Check(
                    f"commit every {BATCH}: 5 listeners vs 1",
                    _ratio(b["ours 5"], b["ours"]),
                    "",
                    0,
                )
            ],
        ),
    ]
    return table


# -- relay throughput -----------------------------------------------------------------------------


class RelayRuns:
    """One relay setup (a table, its relays and writer) run repetition after repetition: fill
    the table with ``k`` rows in one transaction, commit, time until it is empty."""

    def __init__(
        self,
        listeners: list[dict[str, Any]],
        k: int,
        count: int = 1,
        concurrency: int = WORKERS,
        delivered: Callable[[], int] | None = None,
        after: Callable[[], None] | None = None,
        **settings: Any,
    ):
        self.k = k
        self.delivered = delivered
        self.after = after
        #: CPU seconds per row the relay processes used, per repetition.
        self.cpu: list[float] = []
        self._stack = contextlib.ExitStack()
        try:
            table = self._stack.enter_context(fresh_table())
            config = outbox_config(table, listeners)
            config["outbox"].update(settings)
            self.writer = _app(config)
            self._stack.callback(self.writer.close)
            self.relays = self._stack.enter_context(relays(config, count, concurrency))
            self.pending = Pending(table)
            self._stack.callback(self.pending.close)
        except BaseException:
            self._stack.close()
            raise

    def __call__(self) -> Run:
        # Rows left by a repetition cut short (PostgreSQL restarted) go first, untimed.
        self.pending.wait_empty(self.relays)
        before = self.delivered() if self.delivered else 0
        cpu = self.relays.cpu()
        start = fill(self.writer, self.k)
        end = self.pending.wait_empty(self.relays)
        self.cpu.append((self.relays.cpu() - cpu) / self.k)
        note = ""
        if self.delivered is not None:
            got = self.delivered() - before
            if got != self.k:
                note = f"{got} of {self.k} arrived in one repetition"
        if self.after is not None:
            self.after()
        self.pending.vacuum()
        return Run(self.k, end - start, note)

    def close(self) -> None:
        self._stack.close()


class Background:
    """The in-process reference: ``delivery: background`` with WORKERS workers (all started,
    the app kept from one repetition to the next as a relay is), timed from the first trigger
    until ``flush()`` returns; ``delivered()`` counts what arrived."""

    def __init__(
        self,
        listener: dict[str, Any],
        k: int,
        data: Any,
        delivered: Callable[[], int],
        after: Callable[[], None] | None = None,
    ):
        dispatcher = {"max_workers": WORKERS, "min_workers": WORKERS, "queue_size": max(10_000, k)}
        self.app = _app(
            {"delivery": "background", "dispatcher": dispatcher, "listeners": [listener]}
        )
        self.k, self.data, self.delivered, self.after = k, data, delivered, after
        #: CPU seconds per row this process used (triggers and delivery), per repetition.
        self.cpu: list[float] = []

    def __call__(self) -> Run:
        k, trigger, data = self.k, self.app.trigger, self.data
        before = self.delivered()
        cpu = time.process_time()
        start = time.monotonic()
        for _ in range(k):
            trigger(EVENT_NAME, data)
        if not self.app.flush(timeout=300):
            raise RuntimeError("flush() timed out")
        seconds = time.monotonic() - start
        self.cpu.append((time.process_time() - cpu) / k)
        got = self.delivered() - before
        if self.after is not None:
            self.after()
        return Run(k, seconds, "" if got == k else f"{got} of {k} arrived in one repetition")

    def close(self) -> None:
        self.app.close()


@contextlib.contextmanager
def closing_all(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                thing.close()


def _runs(
    ctx: Context, variants: dict[str, Callable[[], Run]], rabbitmq: bool = False
) -> dict[str, Series]:
    """Alternate the variants, waiting for PostgreSQL (and RabbitMQ) when someone restarts it:
    the repetition then runs again."""

    def recover() -> None:
        _recover()
        if rabbitmq:
            wait_for("RabbitMQ", RABBITMQ)

    return alternate(variants, ctx.reps, progress=ctx.log, recover=recover)


def relay_http_analysis(relay_cpu: str, background_cpu: str, background_share: str) -> str:
    """Where a relay's time goes against an HTTP receiver (the CPU figures of this run)."""
    return (
        "A relay claims ahead (twice `concurrency` rows in hand), so its workers do not wait "
        "for a claim; what is left is CPU. Per row, the relay's process used "
        f"{relay_cpu} of CPU, against {background_cpu} for the benchmark's whole process in "
        "background mode, triggers included: around the same HTTP request it claims the row "
        "(an UPDATE ... RETURNING per claim, through psycopg), decodes its stored payload "
        "into a notification, and deletes it (a DELETE per batch of outcomes). On 2 cores "
        "shared by the receiver, PostgreSQL and the relay, that CPU sets the pace; the "
        f"background reference itself reaches {background_share} of the {WORKERS} × 200/s the "
        "receiver allows. Closing the gap: less Python per row between the claim and the "
        "request."
    )


def relay_http(ctx: Context) -> Table:
    k = ctx.scale(2000, 500)
    table = Table(
        "outbox-relay-http",
        "Outbox relay to HTTP, receiver taking 5 ms",
        f"Rows delivered per second by one relay (`eventisc relay`, its own process, "
        f"`--concurrency {WORKERS}`) to the HTTP receiver of the `http` workload taking 5 ms "
        f"per request: {k:,} rows written in one transaction, timed from its commit until the "
        "table is empty (every row delivered and deleted; the receiver's count is checked). "
        f"The reference is in-process background delivery at the same concurrency "
        f"(`delivery: background`, {WORKERS} workers started), timed from the first trigger "
        "until `flush()` returns.",
    )
    with receiver(0.005) as r:
        relay = RelayRuns([_http(f"{r.url}/hook")], k, delivered=r.count)
        background = Background(_http(f"{r.url}/hook"), k, EVENT_DATA, r.count)
        with closing_all(relay, background):
            ctx.log(f"outbox relay to HTTP (5 ms), {k} rows per repetition")
            s = _runs(ctx, {"relay": relay, "background": background})
    cpu = [("background (the benchmark's process)", background.cpu), ("the relay", relay.cpu)]
    add_cpu_note(table, cpu)
    table.rows += [
        row(f"background, {WORKERS} workers (in process)", s["background"], rate=True),
        row(
            f"relay, concurrency {WORKERS}",
            s["relay"],
            rate=True,
            checks=[
                Check(
                    "relay vs background, HTTP 5 ms",
                    speedup(s["relay"], s["background"]),
                    ">=",
                    0.8,
                    explanation=relay_http_analysis(
                        cpu_per_row(relay.cpu),
                        cpu_per_row(background.cpu),
                        share(s["background"], WORKERS / 0.005),
                    ),
                )
            ],
        ),
    ]
    return table


def relay_scaling(ctx: Context) -> Table:
    k = ctx.scale(2000, 400)
    table = Table(
        "outbox-relays",
        "Outbox: two relays vs one, receiver taking 20 ms",
        f"The same, {k:,} rows per repetition, against a receiver taking 20 ms per request: "
        f"one relay process vs two (each `--concurrency {WORKERS}`), sharing the rows through "
        "their claims.",
    )
    with receiver(0.020) as r:
        url = f"{r.url}/hook"
        one = RelayRuns([_http(url)], k, delivered=r.count)
        two = RelayRuns([_http(url)], k, count=2, delivered=r.count)
        with closing_all(one, two):
            ctx.log(f"outbox relays to HTTP (20 ms), one vs two, {k} rows per repetition")
            s = _runs(ctx, {"one": one, "two": two})
    add_cpu_note(table, [("one relay", one.cpu), ("two relays together", two.cpu)])
    table.rows += [
        row(f"one relay, concurrency {WORKERS}", s["one"], rate=True),
        row(
            f"two relays, concurrency {WORKERS} each",
            s["two"],
            rate=True,
            checks=[Check("two relays vs one, HTTP 20 ms", speedup(s["two"], s["one"]), ">=", 1.6)],
        ),
    ]
    return table


#: Relays to RabbitMQ: (label, batch). A relay keeps up to 10 × ``batch`` pipelined messages in
#: flight: by default 1,000, as many as the background publisher (``max_in_flight``): the target.
RABBIT_RELAYS = (
    ("relay, default batch of 100 (1,000 in flight)", 100),
    ("relay, batch of 1,000 (10,000 in flight)", 1000),
)


def relay_rabbit_analysis(relay_cpu: str, background_cpu: str) -> str:
    """Where a relay's time goes publishing to RabbitMQ (the CPU figures of this run)."""
    return (
        "The relay's one thread sets the pace. For every claim of `batch` rows it runs, one "
        "after the other: the claim (an UPDATE of 100 rows returning their payloads, ~2.5–4 "
        "ms here), the start of their publishes (~2 ms: each stored payload decoded from "
        "JSON into a notification and a delivery), and the DELETE of the confirmed rows "
        "(~2 ms); a profile shows ~85 µs of that thread per row, more than half of it "
        "waiting for PostgreSQL, during which no publish starts. pika's I/O thread meanwhile "
        "frames the messages and settles the confirms under the same GIL. The relay's "
        f"process used {relay_cpu} of CPU per row, the benchmark's whole process "
        f"{background_cpu} in background mode, which renders in memory and has no claim, "
        "decode or delete. A larger `batch` shares the round trips over more rows (the row "
        "below). Closing the gap: claiming on a second connection while the relay's thread "
        "starts the last claim's publishes and writes outcomes, so that PostgreSQL's round "
        "trips overlap the publishing."
    )


def relay_rabbit(ctx: Context) -> Table:
    from . import rabbit

    require("RabbitMQ", RABBITMQ)
    k = ctx.scale(5000, 2000)
    table = Table(
        "outbox-relay-rabbit",
        "Outbox relay to RabbitMQ, confirms on",
        f"{k:,} rows per repetition, the `rabbit` workload's 200-byte JSON messages, through a "
        "`rabbit` listener with publisher confirms (pipelined) to a non-durable queue: one "
        "relay, timed from the commit until the table is empty (every message confirmed, "
        "every row deleted), vs in-process background delivery "
        f"({WORKERS} workers, pipelined publishing with up to 1,000 messages in flight, as in "
        "the `rabbit` workload) timed until `flush()` returns. A relay keeps up to 10 × "
        "`batch` pipelined messages in flight: with the default `batch`, 1,000, as many as the "
        "background publisher (the target); a `batch` of 1,000 is shown too. The queue's "
        "message count is checked, and the queue purged, after every repetition.",
    )
    queues = [f"eventisc-bench-{uuid.uuid4().hex[:12]}" for _ in range(len(RABBIT_RELAYS) + 1)]

    def listener(queue: str) -> dict[str, Any]:
        return dict(rabbit._listener(queue, confirm=True), name="publish")

    def counted(queue: str) -> Callable[[], int]:
        return lambda: rabbit.message_count(queue)

    def purge(queue: str) -> Callable[[], None]:
        def run() -> None:
            conn = rabbit.pika.BlockingConnection(rabbit.pika.URLParameters(rabbit.URL))
            try:
                conn.channel().queue_purge(queue)
            finally:
                conn.close()
            time.sleep(0.3)  # the broker done with them before the next variant runs

        return run

    bg_queue = queues[-1]
    try:
        with contextlib.ExitStack() as stack:
            for queue in queues:
                _declare(queue)
            variants: dict[str, Callable[[], Run]] = {}
            variants["background"] = background = Background(
                listener(bg_queue), k, rabbit.DATA, counted(bg_queue), after=purge(bg_queue)
            )
            cpu = [("background (the benchmark's process)", background.cpu)]
            stack.callback(background.close)
            for (label, batch), queue in zip(RABBIT_RELAYS, queues, strict=False):
                relay = RelayRuns(
                    [listener(queue)],
                    k,
                    delivered=counted(queue),
                    after=purge(queue),
                    batch=batch,
                )
                stack.callback(relay.close)
                variants[label] = relay
                cpu.append((label, relay.cpu))
            ctx.log(f"outbox relay to RabbitMQ, {k} messages per repetition")
            s = _runs(ctx, variants, rabbitmq=True)
    finally:
        for queue in queues:
            rabbit.cleanup(lambda queue=queue: rabbit._delete(queue))  # type: ignore[misc]
    add_cpu_note(table, cpu)
    table.rows.append(
        row(f"background, {WORKERS} workers, pipelined (in process)", s["background"], rate=True)
    )
    for label, _ in RABBIT_RELAYS:
        target = label == RABBIT_RELAYS[0][0]
        check = Check(
            f"{label} vs background, RabbitMQ",
            speedup(s[label], s["background"]),
            ">=" if target else "",
            0.5 if target else 0,
            explanation=relay_rabbit_analysis(cpu_per_row(cpu[1][1]), cpu_per_row(cpu[0][1]))
            if target
            else "",
        )
        table.rows.append(row(label, s[label], rate=True, checks=[check]))
    return table


def _declare(queue: str) -> None:
    from . import rabbit

    conn = rabbit.pika.BlockingConnection(rabbit.pika.URLParameters(rabbit.URL))
    try:
        conn.channel().queue_declare(queue, durable=rabbit.DURABLE)
    finally:
        conn.close()


# -- latency: commit to delivered ---------------------------------------------------------------


class Arrivals(ServerProcess):
    """The receiver of :func:`serve_arrivals` in another process."""

    def __init__(self) -> None:
        super().__init__("benchmarks.workloads.outbox", what="the arrivals receiver", wait=30)

    def arrivals(self) -> dict[int, float]:
        """When each POST arrived (monotonic clock), by the ``i`` of its JSON body."""
        with urllib.request.urlopen(f"{self.url}/arrivals", timeout=10) as resp:
            return {int(i): float(t) for i, t in json.loads(resp.read()).items()}


def serve_arrivals() -> None:
    """Answer POSTs at once, recording ``time.monotonic()`` at each one's arrival by the
    ``i`` of its JSON body; ``GET /arrivals`` returns them. CLOCK_MONOTONIC is one clock for
    every process of the machine, so the writer's commit times compare with these."""
    from ..http_server import QuietHandler, run

    arrived: dict[int, float] = {}
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            now = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                arrived.setdefault(int(json.loads(body)["i"]), now)
            self._answer(b"ok")

        def do_GET(self) -> None:
            with lock:
                text = json.dumps(arrived)
            self._answer(text.encode())

    run(Handler)


def latency(ctx: Context) -> Table:
    n = ctx.scale(200, 100)
    table = Table(
        "outbox-latency",
        "Outbox: commit → delivered, idle relay",
        f"{n} single-event transactions, 10–30 ms apart (at random), each `trigger(..., "
        "connection=conn)` then `commit()`, with one idle relay (`eventisc relay`, its own "
        "process) waiting on its LISTEN channel. Latency: from the call to `commit()` to the "
        "POST's arrival at a receiver in another process that answers at once (both read "
        "CLOCK_MONOTONIC, one clock for the machine).",
        columns=("p50", "p99 (max)"),
    )
    arrivals = Arrivals()
    try:
        listener = _http(f"{arrivals.url}/hook", data={"i": "{event_data['i']}"})
        with fresh_table() as name:
            config = outbox_config(name, [listener])
            app = _app(config)
            with closing_all(app), relays(config) as rel, _psycopg().connect(POSTGRES_URL) as conn:
                pending = Pending(name)
                with closing_all(pending):
                    # Warm-up: the relay started and delivered (not measured).
                    for i in range(-5, 0):
                        app.trigger(EVENT_NAME, {"i": i}, connection=conn)
                    conn.commit()
                    pending.wait_empty(rel, timeout=60)
                    ctx.log(f"outbox latency, {n} commits")
                    rng = random.Random(7)
                    committed: dict[int, float] = {}
                    for i in range(n):
                        app.trigger(EVENT_NAME, {"i": i}, connection=conn)
                        committed[i] = time.monotonic()
                        conn.commit()
                        time.sleep(rng.uniform(0.010, 0.030))
                    pending.wait_empty(rel, timeout=60)
        arrived = arrivals.arrivals()
    finally:
        arrivals.close()
    times = sorted(arrived[i] - committed[i] for i in committed if i in arrived)
    missing = n - len(times)
    if not times:
        raise RuntimeError("no notification arrived")
    p50 = statistics.median(times)
    p99 = times[max(0, int(len(times) * 0.99) - 1)]
    table.rows.append(
        Row(
            f"commit → delivered, {n} commits",
            fmt_cost(p50),
            f"{fmt_cost(p99)} ({fmt_cost(times[-1])})",
            checks=[
                Check("commit → delivered: p50 / 20 ms", p50 / 0.020, "<=", 1),
                Check("commit → delivered: p99 / 100 ms", p99 / 0.100, "<=", 1),
            ],
        )
    )
    table.notes.append(f"All {n} delivered: {'yes' if not missing else f'no ({missing} missing)'}.")
    return table


# -- the workload -------------------------------------------------------------------------------


def outbox(ctx: Context) -> list[Table]:
    require("PostgreSQL", POSTGRES)
    _psycopg()
    try:
        import eventisc.outbox.relay  # noqa: F401
    except ImportError:
        relay_missing = "this build has no outbox relay (eventisc.outbox.relay)"
    else:
        relay_missing = ""
    tables = [write_side(ctx)]
    parts: list[tuple[str, str, Callable[[Context], Table]]] = [
        ("outbox-relay-http", "Outbox relay to HTTP, receiver taking 5 ms", relay_http),
        ("outbox-relay-rabbit", "Outbox relay to RabbitMQ, confirms on", relay_rabbit),
        ("outbox-relays", "Outbox: two relays vs one, receiver taking 20 ms", relay_scaling),
        ("outbox-latency", "Outbox: commit → delivered, idle relay", latency),
    ]
    for name, title, part in parts:
        if relay_missing:
            tables.append(Table(name, title, "", skipped=relay_missing))
            continue
        try:
            tables.append(part(ctx))
        except Skip as exc:
            tables.append(Table(name, title, "", skipped=str(exc)))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=serve_arrivals.__doc__)
    parser.parse_args()
    serve_arrivals()


if __name__ == "__main__":
    main()
