"""A durable store of notifications in one SQLite file: dead letters and the durable outbox.

Each row holds one rendered :class:`~eventisc.notification.Notification`, its id included (read
back, it is the same: a replay sends the id the first attempt sent), and a state:

- ``pending``: written before ``trigger()`` returns for a ``durable`` listener and deleted once
  delivered (:meth:`Spool.delivered`). Its ``owner`` is the process delivering it; when that
  process dies (even by SIGKILL), another process takes the row with
  :meth:`Spool.claim_orphans` and delivers it. Delivery is at least once: a process killed
  between delivering and deleting makes the next one deliver again.
- ``dead``: given up on (retries exhausted, background queue full, still queued at shutdown),
  kept with its error and attempts until replayed or purged. A replay first takes the entries
  with :meth:`Spool.claim_dead`, which makes them pending and owned by the replaying process:
  two replays never take the same entry, and the entries of a replay that dies are orphans.

A row that cannot be read back (damaged by hand or by a disk fault: a payload that is not the
JSON this module writes, a column of the wrong type) is never delivered and never stops the
others: :meth:`Spool.entries` and the claims leave it out, :meth:`Spool.unreadable` returns it as
stored, and a pending one found by :meth:`Spool.claim_orphans` is set aside (made ``dead`` with
reason ``unreadable``, logged once) so that it is not tried again at every start.

A file written by an earlier version is upgraded in place when it is opened (its rows get a new
notification id each); a file of a later version is refused.

The file is SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the
process being killed; after a power loss or OS crash the last transactions may be lost (the
database itself stays consistent). Processes on one host may share the file (WAL needs shared
memory, so not over a network filesystem). Payloads are stored as JSON: bytes round-trip
exactly, other values as :func:`eventisc.encoding.dumps` writes them (a datetime comes back
as its ISO string, a tuple or a set as a list).

A :class:`Spool` is thread-safe: one connection behind one lock (measured against a connection
per thread, which had a better mean but stalls of up to 100 ms, its writers sleeping in
SQLite's busy handler). It is fork-safe (:mod:`eventisc._fork`): a child opens its own
connection and never touches the parent's. SQLite failures are raised as
:class:`SpoolError` naming the file.
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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, TypeVar

from ._fork import register
from ._owners import is_alive, owner_id, this_process
from ._spool_codec import decode_payload, encode_payload, pop_trace
from .errors import EventiscError
from .notification import Notification

__all__ = [
    "DEAD",
    "PENDING",
    "THIS_PROCESS",
    "UNREADABLE",
    "Spool",
    "SpoolEntry",
    "SpoolError",
    "SpoolItem",
    "UnreadableEntry",
    "owner_id",
    "parse_age",
]

logger = logging.getLogger(__name__)

#: A row being delivered (durable outbox) by its ``owner`` process.
PENDING = "pending"
#: A row given up on, kept for replay.
DEAD = "dead"
STATES = (PENDING, DEAD)
#: The ``reason`` of a pending row set aside (made dead) because it cannot be read.
UNREADABLE = "unreadable"

#: SQL for a new notification id: 32 lowercase hex digits, as :func:`~eventisc.notification.new_id`
#: gives (128 random bits).
_NEW_ID = "lower(hex(randomblob(16)))"

#: ``PRAGMA user_version`` of the layout this module writes; a newer file is refused, an
#: older one upgraded in place when it is opened.
SCHEMA_VERSION = 2

#: The statements that bring a file from the version before each version to it (a new file
#: goes through all of them, so every file of one version has the same layout).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
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
    ),
    2: (
        # The notification id receivers deduplicate with. Rows written before it get a new
        # one each, as do rows a process of the earlier version still running writes later.
        "ALTER TABLE entries ADD COLUMN notification_id TEXT NOT NULL DEFAULT ''",
        f"UPDATE entries SET notification_id = {_NEW_ID}",
        f"""CREATE TRIGGER entries_notification_id AFTER INSERT ON entries
        WHEN NEW.notification_id = '' BEGIN
            UPDATE entries SET notification_id = {_NEW_ID} WHERE id = NEW.id;
        END""",
    ),
}

_COLUMNS = (
    "id, listener, kind, event_name, payload, state, reason, error, attempts, owner, created, "
    "updated, notification_id"
)
_INSERT = (
    "INSERT INTO entries (listener, kind, event_name, payload, state, reason, error, attempts, "
    "owner, created, updated, notification_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM entries WHERE id = ?"
_GIVE_UP = (
    "UPDATE entries SET state = 'dead', reason = ?, error = ?, attempts = ?, updated = ? "
    "WHERE id = ?"
)
_ATTEMPT = "UPDATE entries SET error = ?, attempts = ?, updated = ? WHERE id = ?"
# In the claim's write transaction, after the rows were read: dead rows become pending too.
_CLAIM = "UPDATE entries SET state = 'pending', owner = ?, updated = ? WHERE id = ?"
_SET_ASIDE = (
    f"UPDATE entries SET state = 'dead', reason = '{UNREADABLE}', error = ?, updated = ? "
    "WHERE id = ?"
)


class SpoolError(EventiscError):
    """The spool file could not be opened, read or written (disk full, locked longer than
    ``busy_timeout``, not a spool, corrupt); the message names the file."""


@dataclass(frozen=True)
class SpoolEntry:
    """One stored notification.

    ``id`` is the entry's number in the file; ``notification`` the notification stored, with
    its own ``id``. ``reason`` says why it is stored (``"durable"``, ``"failed"``,
    ``"queue full"``, ``"shutdown"``...), ``owner`` which process wrote or last claimed it
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


@dataclass(frozen=True)
class UnreadableEntry:
    """A stored row that cannot be read back as a :class:`SpoolEntry`: never delivered, kept
    until purged (:meth:`Spool.purge` with its ``ids``).

    ``problem`` says what is wrong (``"payload: Expecting value: line 1 column 1 (char 0)"``,
    ``"column attempts holds 'many', not an integer"``). The other fields are the row's
    columns as stored, whatever their type: ``payload`` is the stored text,
    ``notification_id`` the stored id, and a text column that is not valid UTF-8 comes back as
    bytes.
    """

    id: int
    problem: str
    listener: Any
    kind: Any
    event_name: Any
    payload: Any
    state: Any
    reason: Any
    error: Any
    attempts: Any
    owner: Any
    created: Any
    updated: Any
    notification_id: Any = None


# -- the spool --------------------------------------------------------------------------------


class _ThisProcess:
    def __repr__(self) -> str:
        return "THIS_PROCESS"


#: The default ``owner`` of a new row: this process (see :func:`owner_id`).
THIS_PROCESS: Any = _ThisProcess()

T = TypeVar("T")
E = TypeVar("E", SpoolEntry, UnreadableEntry)


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
        register(self)
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
        self._lock = threading.Lock()

    _after_fork = _reset

    def _connect(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        db.text_factory = _text
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning(
                    "spool %s: journal mode %s, not WAL (a network filesystem?)", self.path, mode
                )
            db.execute("PRAGMA synchronous = NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                old = _transaction(db, self._migrate)
                if old:
                    logger.info(
                        "spool %s: upgraded from schema version %d to %d",
                        *(self.path, old, SCHEMA_VERSION),
                    )
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Create the layout, or upgrade an older file's in place; return the version the file
        had (0: new)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]  # again, in the transaction
        if version > SCHEMA_VERSION:
            raise SpoolError(
                f"spool {self.path}: written by a newer eventisc (schema version {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade eventisc or use another file"
            )
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise SpoolError(
                f"spool {self.path}: this SQLite database holds something else (tables "
                "but no eventisc schema); choose another file"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return int(version)

    def _error(self, exc: BaseException) -> SpoolError:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            text += f" (another process held it longer than busy_timeout={self.busy_timeout}s)"
        return SpoolError(f"spool {self.path}: {text}")

    def _run(self, work: Callable[[sqlite3.Connection], T], transaction: bool = False) -> T:
        """``work(connection)`` under the lock (in one write transaction if asked), with
        SQLite errors raised as SpoolError."""
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
        head = (n.listener, n.kind, n.event_name, encode_payload(n.payload, n.listener, n.trace))
        return (*head, state, reason, error, attempts, owner, now, now, n.id)

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

    def claim_orphans(
        self,
        listeners: Collection[str] | None = None,
        *,
        older_than: float | None = None,
        ids: Collection[int] | None = None,
    ) -> list[SpoolEntry]:
        """Take over the pending entries whose owner is gone; return them, oldest first.

        Orphans are unowned entries; entries of a process of this host that has exited (a
        zombie counts as exited, a recycled pid is told apart by its start time); and entries
        of another host, or of a process whose liveness cannot be checked, untouched for
        ``lease`` seconds. ``listeners``: only entries of these listener names (the ones the
        caller can deliver); ``older_than`` and ``ids`` filter as in :meth:`entries`. Atomic:
        when several processes claim at once, each entry goes to one of them. The entries
        stay pending; their owner becomes this process.

        An orphan that cannot be read is not returned: it is set aside (made ``dead`` with
        reason :data:`UNREADABLE` and the problem as its error, so no claim meets it again)
        and logged at WARNING on the ``eventisc.spool`` logger.
        """
        return self._claim(PENDING, listeners, older_than, ids)

    def claim_dead(
        self,
        listeners: Collection[str] | None = None,
        *,
        older_than: float | None = None,
        ids: Collection[int] | None = None,
    ) -> list[SpoolEntry]:
        """Take the dead entries to replay them; return them, oldest first.

        Filters as :meth:`claim_orphans`. Atomic, as a claim of orphans: each entry goes to one
        process. A taken entry becomes pending, owned by this process, so that neither another
        replay nor an app's recovery takes it while this process lives; the caller then calls
        :meth:`delivered` or :meth:`give_up` (which makes it dead again). If this process dies
        first, its entries are orphans: the next :meth:`claim_orphans` (a replay, an app
        starting with ``recover``) takes them. Unreadable entries are left as they are
        (:meth:`unreadable` lists them).
        """
        return self._claim(DEAD, listeners, older_than, ids)

    def _claim(
        self,
        state: str,
        listeners: Collection[str] | None,
        older_than: float | None,
        ids: Collection[int] | None,
    ) -> list[SpoolEntry]:
        _, host, me = this_process()
        wanted = None if listeners is None else set(listeners)
        where, params = self._where(None, state, older_than, ids)
        if state == PENDING:
            where += " AND (owner IS NULL OR owner != ?)"
            params.append(me)
        sql = f"SELECT {_COLUMNS} FROM entries{where} ORDER BY created, id"

        def claim(db: sqlite3.Connection) -> tuple[list[SpoolEntry], list[UnreadableEntry]]:
            now = self._clock()
            verdicts: dict[str, bool | None] = {}
            taken: list[SpoolEntry] = []
            unreadable: list[UnreadableEntry] = []
            for row in db.execute(sql, params).fetchall():
                if not _wanted(row[1], wanted) or (
                    state == PENDING and not self._orphan(row[9], row[11], now, host, verdicts)
                ):
                    continue
                item = _read(row)
                if isinstance(item, SpoolEntry):
                    taken.append(replace(item, state=PENDING, owner=me, updated=now))
                elif state == PENDING:
                    unreadable.append(item)
            db.executemany(_CLAIM, [(me, now, entry.id) for entry in taken])
            db.executemany(_SET_ASIDE, [(item.problem, now, item.id) for item in unreadable])
            return taken, unreadable

        taken, unreadable = self._run(claim, True)
        for item in unreadable:
            logger.warning(
                "spool %s: pending entry %d (listener %r, event %r) cannot be read: %s. Set "
                "aside as dead with reason %r, never delivered: `eventisc spool show CONFIG %d` "
                "shows it as stored, `eventisc spool purge CONFIG --id %d` deletes it",
                *(self.path, item.id, item.listener, item.event_name, item.problem),
                *(UNREADABLE, item.id, item.id),
            )
        return taken

    def _orphan(
        self, owner: Any, updated: Any, now: float, host: str, seen: dict[str, bool | None]
    ) -> bool:
        if not owner or not isinstance(owner, str):
            return True  # unowned, or a damaged owner column that no process can claim as its own
        if owner not in seen:
            parts = owner.rsplit(":", 2)  # host:pid:start
            alive: bool | None = None  # another host: cannot tell
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
                alive = is_alive(int(parts[1]), parts[2])
            seen[owner] = alive
        alive = seen[owner]
        if alive is None:  # a damaged time counts as expired: the row could wait for ever
            return self.lease is not None and (not _is_time(updated) or now - updated >= self.lease)
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
        """The readable entries matching every given filter, oldest first.

        ``older_than``: created at least that many seconds ago; ``ids``: only these entry ids;
        ``limit``: at most that many entries. Rows that cannot be read are left out (they stay
        in the file, :meth:`count` counts them): :meth:`unreadable` returns them.
        """
        return self._select(SpoolEntry, listener, state, older_than, ids, limit)

    def unreadable(
        self,
        *,
        listener: str | None = None,
        state: str | None = None,
        older_than: float | None = None,
        ids: Collection[int] | None = None,
        limit: int | None = None,
    ) -> list[UnreadableEntry]:
        """The rows matching the filters (as in :meth:`entries`) that cannot be read back,
        oldest first, as stored: see :class:`UnreadableEntry`. Reads every matching row."""
        return self._select(UnreadableEntry, listener, state, older_than, ids, limit)

    def _select(
        self,
        kind: type[E],
        listener: str | None,
        state: str | None,
        older_than: float | None,
        ids: Collection[int] | None,
        limit: int | None,
    ) -> list[E]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit!r}")
        where, params = self._where(listener, state, older_than, ids)
        sql = f"SELECT {_COLUMNS} FROM entries{where} ORDER BY created, id"

        def select(db: sqlite3.Connection) -> list[E]:
            cursor = db.execute(sql, params)
            try:
                # Row by row: the limit counts rows of this kind, and stops the reading.
                return list(islice((i for i in map(_read, cursor) if isinstance(i, kind)), limit))
            finally:
                cursor.close()

        return self._run(select)

    def get(self, entry_id: int) -> SpoolEntry | None:
        """The entry with this id, or None.

        Raises SpoolError naming the entry and its problem when the row cannot be read;
        ``unreadable(ids=[entry_id])`` returns such a row as stored.
        """
        rows = self._query(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,))
        if not rows:
            return None
        item = _read(rows[0])
        if isinstance(item, UnreadableEntry):
            raise SpoolError(
                f"spool {self.path}: entry {entry_id} cannot be read: {item.problem} "
                f"(Spool.unreadable(ids=[{entry_id}]) returns it as stored)"
            )
        return item

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


def _text(data: bytes) -> str | bytes:
    """The connection's text factory: text that is not UTF-8 comes back as bytes (its row is
    then unreadable) instead of failing the whole query."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and value != ""


#: Each column after the id: its index in _COLUMNS, name, what it must hold, and a check.
_CHECKS: tuple[tuple[int, str, str, Callable[[Any], bool]], ...] = (
    (1, "listener", "text", _is_text),
    (2, "kind", "text", _is_text),
    (3, "event_name", "text", _is_text),
    (4, "payload", "text", _is_text),
    (5, "state", "'pending' or 'dead'", STATES.__contains__),
    (6, "reason", "text", _is_text),
    (7, "error", "text or NULL", _is_text_or_null),
    (8, "attempts", "an integer", _is_int),
    (9, "owner", "text or NULL", _is_text_or_null),
    (10, "created", "a Unix time", _is_time),
    (11, "updated", "a Unix time", _is_time),
    (12, "notification_id", "a notification id (text)", _is_id),
)


def _problem(row: tuple[Any, ...]) -> str | None:
    """What makes this row unreadable, None if nothing does (the payload is checked apart)."""
    for index, name, expected, valid in _CHECKS:
        value = row[index]
        if not valid(value):
            held = "NULL" if value is None else f"{value!r:.60}"
            if isinstance(value, bytes):  # see _text
                held += " (a BLOB, or text that is not UTF-8)"
            return f"column {name} holds {held}, not {expected}"
    return None


def _read(row: tuple[Any, ...]) -> SpoolEntry | UnreadableEntry:
    """The entry stored in ``row`` (the columns of _COLUMNS), or what it is when unreadable."""
    problem = _problem(row)
    if problem is None:
        try:
            payload = decode_payload(row[4])
        except ValueError as exc:
            problem = f"payload: {exc}"
        else:
            trace = pop_trace(payload)
            notification = Notification(row[1], row[2], row[3], payload, row[12], trace=trace)
            return SpoolEntry(row[0], notification, *row[5:12])
    return UnreadableEntry(row[0], problem, *row[1:])


def _wanted(listener: Any, wanted: set[str] | None) -> bool:
    # A listener column that is not text belongs to nobody: any claim may set its row aside.
    return wanted is None or listener in wanted or not isinstance(listener, str)


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


#: Connections inherited from the parent process, kept (unused) so they are never closed here.
_INHERITED: list[sqlite3.Connection] = []
