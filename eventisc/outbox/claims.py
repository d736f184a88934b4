"""A relay's side of the outbox table: claiming rows, writing outcomes, looking in.

:class:`Claims` holds a relay's own connection to PostgreSQL, in autocommit mode: every
statement is a short transaction of its own, and none is open while the relay delivers. It runs
the statements of :mod:`.sql`; any failure is an :class:`~eventisc.errors.OutboxError` (password
masked), after which the connection is dropped and made again by the next call.

:class:`Outcomes` collects what deliveries came to, from any thread, until the relay writes
them, all or nothing; when that fails they are put back and written later, so an outcome is
never lost while the process lives. :class:`Backoff` spaces out attempts to reconnect, and
:class:`Outage` follows whether PostgreSQL answers.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import OutboxError
from ..logs import Throttle
from ..settings import OutboxSettings
from .sql import Statements
from .writer import connect, failure, psycopg_module

__all__ = ["Backoff", "Claims", "Outage", "Outcomes", "Row", "Written"]

logger = logging.getLogger(__name__)

#: Seconds PostgreSQL may spend on one of a relay's statements before it gives up on it.
STATEMENT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Row:
    """A claimed row (the columns of :data:`eventisc.outbox.sql.ROW_COLUMNS`); ``payload`` is
    its stored text, ``attempts`` the attempts made so far."""

    seq: int
    id: str
    listener: str
    kind: str
    event_name: str
    payload: str
    ordering_key: str | None
    attempts: int


@dataclass
class Written:
    """A batch of outcomes: delivered rows, retries (seq, delay, error), dead rows (seq, error).
    ``unblocks``: a row of an ordering key is among those that leave the pending state."""

    delivered: list[int] = field(default_factory=list)
    retries: list[tuple[int, float, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    unblocks: bool = False

    def __len__(self) -> int:
        return len(self.delivered) + len(self.retries) + len(self.dead)


class Outcomes:
    """Outcomes not written yet; safe to add to from any thread (a listener's I/O thread
    included: adding never blocks for long)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = Written()
        #: Outcomes added since the relay started, by kind.
        self.delivered = self.retried = self.dead = 0

    def deliver(self, seq: int, keyed: bool) -> None:
        with self._lock:
            self._batch.delivered.append(seq)
            self._batch.unblocks |= keyed
            self.delivered += 1

    def retry(self, seq: int, delay: float, error: str) -> None:
        with self._lock:
            self._batch.retries.append((seq, delay, error))
            self.retried += 1

    def kill(self, seq: int, error: str, keyed: bool) -> None:
        with self._lock:
            self._batch.dead.append((seq, error))
            self._batch.unblocks |= keyed
            self.dead += 1

    def take(self) -> Written:
        """Everything added so far (an empty batch when nothing was)."""
        with self._lock:
            batch, self._batch = self._batch, Written()
        return batch

    def put_back(self, batch: Written) -> None:
        """Keep ``batch`` again: it could not be written."""
        with self._lock:
            kept = self._batch
            kept.delivered[:0] = batch.delivered
            kept.retries[:0] = batch.retries
            kept.dead[:0] = batch.dead
            kept.unblocks |= batch.unblocks

    def __len__(self) -> int:
        return len(self._batch)


class Backoff:
    """Growing pauses between attempts to reach PostgreSQL: 0.1 s doubling up to ``cap``,
    spread by ±20% so relays restarted together do not knock together."""

    def __init__(self, first: float = 0.1, cap: float = 5.0):
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.first


class Outage:
    """Whether PostgreSQL answers a relay, when to try again after a failure (a growing pause,
    :class:`Backoff`), and what to log: the first failure and then one a minute at WARNING,
    the recovery at INFO."""

    def __init__(self, name: str):
        self.name = name
        #: When it stopped answering (``time.monotonic()``), None while it answers.
        self.since: float | None = None
        #: When to try again.
        self.retry_at = 0.0
        self._backoff = Backoff()
        self._log = Throttle(60.0)

    def wait(self, now: float) -> float:
        """Seconds before trying PostgreSQL again (0: now)."""
        return max(0.0, self.retry_at - now)

    def failed(self, error: OutboxError, detail: str, now: float) -> None:
        """A statement failed with ``error``; ``detail`` says what the relay keeps meanwhile."""
        delay = self._backoff.next()
        self.retry_at = now + delay
        first = self.since is None
        if first:
            self.since = now
        if self._log.ready() is not None or first:
            logger.warning("%s: %s; %s; trying again in %.1f s", self.name, error, detail, delay)

    def answered(self, now: float) -> bool:
        """A statement succeeded: True when PostgreSQL was not answering before."""
        if self.since is None:
            return False
        logger.info("%s: PostgreSQL answers again (after %.1f s)", self.name, now - self.since)
        self.since = None
        self._backoff.reset()
        return True


class Claims:
    """The statements a relay runs, on a connection of its own (see the module docstring).
    Used from one thread at a time."""

    def __init__(self, settings: OutboxSettings, relay_id: str, skip_dead: Sequence[str]):
        self.settings = settings
        self.statements = Statements(settings.table, settings.channel)
        self.relay_id = relay_id
        self.skip_dead = list(skip_dead)
        self._errors: type[BaseException] = psycopg_module().Error
        self._conn: Any = None
        #: Statements sent so far (outcome batches count one).
        self.queries = 0

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self.drop()
            conn = connect(self.settings)  # raises OutboxError
            try:
                conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}")
            except self._errors as exc:
                conn.close()
                raise failure(self.settings, "cannot set up a connection to", exc) from exc
            self._conn = conn
        return conn

    def _run(self, doing: str, sql: str, params: Any = None) -> Any:
        """Run one statement; its cursor. Raises OutboxError (and drops the connection)."""
        conn = self._connection()
        self.queries += 1
        try:
            return conn.execute(sql, params)
        except self._errors as exc:
            self.drop()
            raise failure(self.settings, doing, exc) from exc

    def claim(self, limit: int) -> list[Row]:
        """Lease up to ``limit`` due rows to this relay for ``lease`` seconds, oldest first."""
        params = {
            "batch": limit,
            "lease": self.settings.lease,
            "relay": self.relay_id,
            "skip_dead": self.skip_dead,
        }
        records = self._run("cannot claim rows of", self.statements.claim, params).fetchall()
        return sorted((Row(*record) for record in records), key=_seq)

    def write(self, batch: Written, retain: bool) -> None:
        """Write a batch of outcomes, all or nothing: delivered rows deleted, or kept as
        ``delivered`` when ``retain``; retries; dead rows. One statement per kind of outcome;
        several are sent together, in one transaction."""
        statements = self._outcome_statements(batch, retain)
        if not statements:
            return
        conn = self._connection()
        self.queries += 1
        try:
            if len(statements) == 1:
                conn.execute(*statements[0])
                return
            with conn.pipeline(), conn.transaction():
                for statement in statements:
                    conn.execute(*statement)
        except self._errors as exc:
            self.drop()
            raise failure(self.settings, f"cannot record {len(batch)} outcome(s) in", exc) from exc

    def _outcome_statements(self, batch: Written, retain: bool) -> list[tuple[str, Any]]:
        s = self.statements
        statements: list[tuple[str, Any]] = []
        if batch.delivered:
            statements.append((s.mark_delivered if retain else s.delete_delivered,
                               [batch.delivered]))  # fmt: skip
        mine = self.relay_id
        if batch.retries:
            columns = [list(c) for c in zip(*batch.retries, strict=True)]
            statements.append((s.retry, [*columns, mine]))
        if batch.dead:
            statements.append((s.dead, [*[list(c) for c in zip(*batch.dead, strict=True)], mine]))
        return statements

    def release(self, seqs: Sequence[int]) -> int:
        """Give back the leases of rows this relay claimed and never started; how many."""
        cursor = self._run("cannot give back leases in", self.statements.release,
                           [list(seqs), self.relay_id])  # fmt: skip
        return int(cursor.fetchone()[1])

    def next_due(self) -> float | None:
        """Seconds until the next pending row is due or its lease runs out (None: none)."""
        row = self._run("cannot read", self.statements.next_due).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def backlog(self) -> tuple[int, int, float]:
        """Pending rows, dead rows, and the age in seconds of the oldest pending row."""
        pending, dead, age = self._run("cannot read", self.statements.backlog).fetchone()
        return int(pending), int(dead), float(age)

    def purge(self) -> int:
        """Delete delivered rows kept longer than ``retain_delivered``; how many."""
        cursor = self._run("cannot purge delivered rows of", self.statements.purge_retained,
                           [self.settings.retain_delivered])  # fmt: skip
        return int(cursor.rowcount)

    def drop(self) -> None:
        """Close the connection (a new one is made by the next call)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection may fail to close: it is gone either way
                pass

    def forget(self) -> None:
        """Forget the connection without closing it (a forked child: it is the parent's)."""
        self._conn = None


def _seq(row: Row) -> int:
    return row.seq
