"""A durable store of notifications in one SQLite file: dead letters and the durable outbox.

Each row holds one rendered :class:`~eventisc.notification.Notification` and a state:

- ``pending``: written before ``trigger()`` returns for a ``durable`` listener and deleted once
  delivered (:meth:`Spool.delivered`). Its ``owner`` is the process delivering it; when that
  process dies (even by SIGKILL), another process takes the row with
  :meth:`Spool.claim_orphans` and delivers it. Delivery is at least once: a process killed
  between delivering and deleting makes the next one deliver again.
- ``dead``: given up on (retries exhausted, background queue full, still queued at shutdown),
  kept with its error and attempts until replayed or purged.

The file is SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the
process being killed; after a power loss or OS crash the last transactions may be lost (the
database itself stays consistent). Processes on one host may share the file (WAL needs shared
memory, so not over a network filesystem). Payloads are stored as JSON: bytes round-trip
exactly, other values as :func:`eventisc.encoding.dumps` writes them (a datetime comes back
as its ISO string, a tuple or a set as a list).

A :class:`Spool` is thread-safe: one connection behind one lock (measured against a connection
per thread, which had a better mean but stalls of up to 100 ms, its writers sleeping in
SQLite's busy handler). It is fork-safe: a child opens its own connection and never touches
the parent's. SQLite failures are raised as :class:`SpoolError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._owners import is_alive, owner_id, this_process
from ._spool_codec import decode_payload, encode_payload
from .errors import EventiscError
from .notification import Notification

__all__ = [
    "DEAD",
    "PENDING",
    "THIS_PROCESS",
    "Spool",
    "SpoolEntry",
    "SpoolError",
    "SpoolItem",
    "owner_id",
    "parse_age",
]

logger = logging.getLogger("eventisc.spool")

#: A row being delivered (durable outbox) by its ``owner`` process.
PENDING = "pending"
#: A row given up on, kept for replay.
DEAD = "dead"
STATES = (PENDING, DEAD)

#: ``PRAGMA user_version`` of the layout this module writes; a newer file is refused.
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stale id cannot hit a new row
        listener TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_name TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'dead')),
        reason TEXT NOT NULL,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX entries_state_created ON entries (state, created)",
)

_COLUMNS = (
    "id, listener, kind, event_name, payload, state, reason, error, attempts, owner, created, "
    "updated"
)
_INSERT = (
    "INSERT INTO entries (listener, kind, event_name, payload, state, reason, error, attempts, "
    "owner, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM entries WHERE id = ?"
_GIVE_UP = (
    "UPDATE entries SET state = 'dead', reason = ?, error = ?, attempts = ?, updated = ? "
    "WHERE id = ?"
)
_ATTEMPT = "UPDATE entries SET error = ?, attempts = ?, updated = ? WHERE id = ?"
_CLAIM = "UPDATE entries SET owner = ?, updated = ? WHERE id = ? AND state = 'pending'"


class SpoolError(EventiscError):
    """The spool file could not be opened, read or written (disk full, locked longer than
    ``busy_timeout``, not a spool, corrupt); the message names the file."""


@dataclass(frozen=True)
class SpoolEntry:
    """One stored notification.

    ``reason`` says why it is stored (``"durable"``, ``"failed"``, ``"queue full"``,
    ``"shutdown"``...), ``owner`` which process wrote or last claimed it
    (``host:pid:start``), ``created``/``updated`` are Unix times.
    """

    id: int
    notification: Notification
    state: str
    reason: str
    error: str | None
    attempts: int
    owner: str | None
    created: float
    updated: float


# -- the spool --------------------------------------------------------------------------------


class _ThisProcess:
    def __repr__(self) -> str:
        return "THIS_PROCESS"


#: The default ``owner`` of a new row: this process (see :func:`owner_id`).
THIS_PROCESS: Any = _ThisProcess()

T = TypeVar("T")


@dataclass(frozen=True)
class SpoolItem:
    """One row for :meth:`Spool.add_many`, with :meth:`Spool.add`'s keywords as fields."""

    notification: Notification
    state: str = DEAD
    reason: str = "failed"
    error: str | None = None
    attempts: int = 0
    owner: str | None = THIS_PROCESS


class Spool:
    """The spool file at ``path`` (created with its directories and schema if needed).

    ``busy_timeout``: seconds a write waits for another process's transaction before raising
    SpoolError. ``lease``: seconds after which a pending row of another host (or of a process
    whose liveness cannot be checked) counts as orphaned if nobody touched it; None: never.
    ``clock`` gives the Unix time written in ``created``/``updated`` (a test can pass its own).
    Every method may raise :class:`SpoolError`; ValueError for an invalid argument.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        lease: float | None = 3600.0,
        clock: Callable[[], float] = time.time,
    ):
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be a number of seconds >= 0, not {busy_timeout!r}")
        if lease is not None and not lease >= 0:
            raise ValueError(f"lease must be a number of seconds >= 0 or None, not {lease!r}")
        self.path: str = os.fspath(path)
        self.busy_timeout = busy_timeout
        self.lease = lease
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._reset()
        _SPOOLS.add(self)
        self._run(lambda db: None)  # open now: a bad path fails here, not on the first event

    def __repr__(self) -> str:
        return f"<Spool {self.path!r}>"

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reset(self) -> None:
        """New lock, no connection (at creation, and in a child process after a fork)."""
        if self._db is not None:
            # The parent's connection: never use it, and never close it (closing could act on
            # the parent's locks and WAL). Keeping a reference stops it being closed when freed.
            _INHERITED.append(self._db)
            self._db = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning(
                    "spool %s: journal mode %s, not WAL (a network filesystem?)", self.path, mode
                )
            db.execute("PRAGMA synchronous = NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                _transaction(db, self._migrate)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]  # again, in the transaction
        if version > SCHEMA_VERSION:
            raise SpoolError(
                f"spool {self.path}: written by a newer eventisc (schema version {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade eventisc or use another file"
            )
        if version == 0:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise SpoolError(
                    f"spool {self.path}: this SQLite database holds something else (tables "
                    "but no eventisc schema); choose another file"
                )
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _error(self, exc: BaseException) -> SpoolError:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            text += f" (another process held it longer than busy_timeout={self.busy_timeout}s)"
        return SpoolError(f"spool {self.path}: {text}")

    def _run(self, work: Callable[[sqlite3.Connection], T], transaction: bool = False) -> T:
        """``work(connection)`` under the lock (in one write transaction if asked), with
        SQLite errors raised as SpoolError."""
        if self._pid != os.getpid():
            self._reset()  # forked without os.fork's hook: do not even take the old lock
        with self._lock:
            try:
                db = self._db
                if db is None:
                    db = self._db = self._connect()
                return _transaction(db, work) if transaction else work(db)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        # The hot path (add, delivered): _run without the closure.
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            try:
                db = self._db
                if db is None:
                    db = self._db = self._connect()
                return db.execute(sql, params)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._run(lambda db: db.execute(sql, params).fetchall())

    # -- writing ------------------------------------------------------------------------------

    def _row(
        self,
        n: Notification,
        state: str,
        reason: str,
        error: str | None,
        attempts: int,
        owner: str | None,
    ) -> tuple[Any, ...]:
        if state not in STATES:
            raise ValueError(f"state must be 'pending' or 'dead', not {state!r}")
        if owner is THIS_PROCESS:
            owner = this_process()[2]
        now = self._clock()
        head = (n.listener, n.kind, n.event_name, encode_payload(n.payload, n.listener))
        return (*head, state, reason, error, attempts, owner, now, now)

    def add(
        self,
        notification: Notification,
        *,
        state: str = DEAD,
        reason: str = "failed",
        error: str | None = None,
        attempts: int = 0,
        owner: str | None = THIS_PROCESS,
    ) -> int:
        """Store ``notification``, committed when this returns; return its entry id.

        ``owner`` defaults to this process: a pending row is not claimed by others while it
        lives. None leaves the row unowned: any process's :meth:`claim_orphans` takes it.
        Raises TemplateError naming the listener when the payload cannot be stored as JSON.
        """
        row = self._row(notification, state, reason, error, attempts, owner)
        return self._execute(_INSERT, row).lastrowid  # type: ignore[return-value]

    def add_many(
        self, items: Iterable[Notification | SpoolItem | tuple[Notification, Mapping[str, Any]]]
    ) -> list[int]:
        """Store several notifications in one transaction; return their ids in order.

        An item is a Notification (add()'s defaults), a :class:`SpoolItem`, or a
        ``(notification, {add()'s keywords})`` pair. Every payload is encoded before anything
        is written: a TemplateError stores nothing (the caller may add the others one by one).
        """
        rows = []
        for item in items:
            if isinstance(item, Notification):
                item = SpoolItem(item)
            elif isinstance(item, tuple):
                item = SpoolItem(item[0], **item[1])
            rows.append(
                self._row(
                    item.notification,
                    item.state,
                    item.reason,
                    item.error,
                    item.attempts,
                    item.owner,
                )
            )
        ids = self._run(lambda db: [db.execute(_INSERT, r).lastrowid for r in rows], True)
        return ids  # type: ignore[return-value]

    def delivered(self, entry_id: int) -> bool:
        """Delete the entry (delivered or replayed); False if it was already gone."""
        return self._execute(_DELETE, (entry_id,)).rowcount > 0

    def give_up(
        self, entry_id: int, *, error: str | None, attempts: int, reason: str = "failed"
    ) -> bool:
        """Make the entry ``dead`` with its last error; False if it no longer exists."""
        params = (reason, error, attempts, self._clock(), entry_id)
        return self._execute(_GIVE_UP, params).rowcount > 0

    def record_attempt(self, entry_id: int, *, error: str | None, attempts: int) -> bool:
        """Record a failed attempt, keeping the state (for a pending row, renewing its
        ``lease``); False if the entry no longer exists."""
        params = (error, attempts, self._clock(), entry_id)
        return self._execute(_ATTEMPT, params).rowcount > 0

    def release(self, ids: Collection[int]) -> int:
        """Leave these pending entries unowned, so the next :meth:`claim_orphans` (of any
        process, this one included) takes them; return how many were released."""
        sql = "UPDATE entries SET owner = NULL, updated = ? WHERE state = 'pending' AND " + _IN_IDS
        return self._execute(sql, (self._clock(), _ids(ids))).rowcount

    def claim_orphans(self, listeners: Collection[str] | None = None) -> list[SpoolEntry]:
        """Take over the pending entries whose owner is gone; return them, oldest first.

        Orphans are unowned entries; entries of a process of this host that has exited (a
        zombie counts as exited, a recycled pid is told apart by its start time); and entries
        of another host, or of a process whose liveness cannot be checked, untouched for
        ``lease`` seconds. ``listeners``: only entries of these listener names (the ones the
        caller can deliver). Atomic: when several processes claim at once, each entry goes to
        one of them. The entries stay pending; their owner becomes this process.
        """
        _, host, me = this_process()
        wanted = None if listeners is None else set(listeners)

        def claim(db: sqlite3.Connection) -> tuple[list[Any], float]:
            sql = f"SELECT {_COLUMNS} FROM entries WHERE state = 'pending' "
            rows = db.execute(
                sql + "AND (owner IS NULL OR owner != ?) ORDER BY created, id", (me,)
            ).fetchall()
            now = self._clock()
            verdicts: dict[str, bool | None] = {}
            rows = [
                row
                for row in rows
                if (wanted is None or row[1] in wanted)
                and self._orphan(row[9], row[11], now, host, verdicts)
            ]
            db.executemany(_CLAIM, [(me, now, row[0]) for row in rows])
            return rows, now

        rows, now = self._run(claim, True)
        return [_entry(row[:9] + (me, row[10], now), self.path) for row in rows]

    def _orphan(
        self, owner: str | None, updated: float, now: float, host: str, seen: dict[str, bool | None]
    ) -> bool:
        if not owner:
            return True
        if owner not in seen:
            parts = owner.rsplit(":", 2)  # host:pid:start
            alive: bool | None = None  # another host: cannot tell
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
                alive = is_alive(int(parts[1]), parts[2])
            seen[owner] = alive
        alive = seen[owner]
        if alive is None:
            return self.lease is not None and now - updated >= self.lease
        return not alive

    # -- reading and purging --------------------------------------------------------------------

    def _where(
        self,
        listener: str | None,
        state: str | None,
        older_than: float | None,
        ids: Collection[int] | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if listener is not None:
            clauses.append("listener = ?")
            params.append(listener)
        if state is not None:
            if state not in STATES:
                raise ValueError(f"state must be 'pending', 'dead' or None, not {state!r}")
            clauses.append("state = ?")
            params.append(state)
        if older_than is not None:
            if not older_than >= 0:
                raise ValueError(f"older_than must be a number of seconds >= 0, not {older_than!r}")
            clauses.append("created <= ?")
            params.append(self._clock() - older_than)
        if ids is not None:
            clauses.append(_IN_IDS)
            params.append(_ids(ids))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def entries(
        self,
        *,
        listener: str | None = None,
        state: str | None = None,
        older_than: float | None = None,
        ids: Collection[int] | None = None,
        limit: int | None = None,
    ) -> list[SpoolEntry]:
        """The entries matching every given filter, oldest first.

        ``older_than``: created at least that many seconds ago; ``ids``: only these entry ids;
        ``limit``: at most that many entries. Raises SpoolError for an unreadable payload.
        """
        where, params = self._where(listener, state, older_than, ids)
        sql = f"SELECT {_COLUMNS} FROM entries{where} ORDER BY created, id"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit!r}")
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_entry(row, self.path) for row in self._query(sql, params)]

    def get(self, entry_id: int) -> SpoolEntry | None:
        """The entry with this id, or None."""
        rows = self._query(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,))
        return _entry(rows[0], self.path) if rows else None

    def purge(
        self,
        *,
        listener: str | None = None,
        state: str | None = DEAD,
        older_than: float | None = None,
        ids: Collection[int] | None = None,
    ) -> int:
        """Delete the matching entries (by default every dead one); return how many.

        ``state=None`` deletes pending entries too, which a live process may be delivering.
        """
        where, params = self._where(listener, state, older_than, ids)
        return self._execute(f"DELETE FROM entries{where}", params).rowcount

    def count(self, *, state: str | None = None, listener: str | None = None) -> int:
        """How many entries match."""
        where, params = self._where(listener, state, None, None)
        return int(self._query(f"SELECT count(*) FROM entries{where}", params)[0][0])

    def close(self) -> None:
        """Close the connection; the spool opens a new one if used again."""
        if self._pid != os.getpid():
            self._reset()
            return
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_IN_IDS = "id IN (SELECT value FROM json_each(?))"  # any number of ids, one parameter


def _ids(ids: Collection[int]) -> str:
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a collection of entry ids, not a string")
    return json.dumps([int(i) for i in ids])


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # IMMEDIATE takes the write lock first (waiting busy_timeout), so a read followed by a
    # write cannot fail midway because another process wrote in between.
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _entry(row: tuple[Any, ...], path: str) -> SpoolEntry:
    try:
        payload = decode_payload(row[4])
    except (TypeError, ValueError) as exc:
        raise SpoolError(f"spool {path}: entry {row[0]} has an unreadable payload: {exc}") from None
    notification = Notification(row[1], row[2], row[3], payload)
    return SpoolEntry(row[0], notification, *row[5:])


# -- ages -------------------------------------------------------------------------------------

_AGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``"90s"``, ``"10m"``, ``"1.5h"``, ``"7d"``, ``"2w"`` or
    ``"30"`` (plain seconds). Raises ValueError saying what is accepted."""
    match = _AGE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid age {text!r}: use a number of seconds, or a number followed by s, m, h, "
            "d or w (for example 90s, 10m, 1.5h, 7d)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid age {text!r}: too large")
    return seconds


#: Every live spool, so a forked child drops their connections before any thread uses one.
_SPOOLS: weakref.WeakSet[Spool] = weakref.WeakSet()
#: Connections inherited from the parent process, kept (unused) so they are never closed here.
_INHERITED: list[sqlite3.Connection] = []


def _reset_spools_in_child() -> None:
    for spool in list(_SPOOLS):
        spool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_spools_in_child)
