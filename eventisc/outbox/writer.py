"""Writing notifications to the outbox table: all the rows of one trigger in one statement.

Through the caller's connection (:mod:`~eventisc.outbox.connections`), the rows are part of
the caller's transaction: committed with it, or never there. Without one, eventisc writes with
a connection of its own pool, in autocommit, so the rows are committed before ``trigger``
returns; a connection found broken (PostgreSQL restarted) is replaced and the write made once
more, which is harmless: a row whose id is there already is not written again.

Any failure is an :class:`~eventisc.errors.OutboxError`: ``trigger`` raises it, because the
caller's transaction must know its notifications were not written.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .._fork import register
from ..errors import ConfigError, OutboxError
from ..masking import mask_url
from ..settings import OutboxSettings
from .connections import execute
from .sql import Statements

__all__ = ["OutboxWriter", "Row", "backlog_of", "connect", "failure", "psycopg_module"]

logger = logging.getLogger(__name__)

#: Rows written with one VALUES list at most (more go as arrays: one statement text whatever
#: their number, and a statement's parameters are limited to 65,535).
VALUES_ROWS = 50

#: One row to write: (id, listener, kind, event_name, payload as stored, ordering key).
Row = tuple[str, str, str, str, str, "str | None"]


def psycopg_module() -> Any:
    """psycopg 3, imported now (OutboxError saying what to install when it is missing)."""
    try:
        import psycopg
    except ImportError:
        raise OutboxError("the outbox needs psycopg 3: pip install 'eventisc[postgres]'") from None
    return psycopg


def connect(settings: OutboxSettings, *, autocommit: bool = True) -> Any:
    """A new psycopg connection to the outbox's database (OutboxError when it fails)."""
    psycopg = psycopg_module()
    try:
        return psycopg.connect(
            settings.url,
            autocommit=autocommit,
            connect_timeout=max(1, round(settings.connect_timeout)),
        )
    except psycopg.Error as exc:
        raise failure(settings, "cannot connect to", exc) from exc


def failure(settings: OutboxSettings, doing: str, exc: BaseException) -> OutboxError:
    """The OutboxError for ``exc`` met while ``doing`` the outbox (passwords masked)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return OutboxError(
        f"{doing} the outbox table {settings.table} at {mask_url(settings.url)}: "
        f"{type(exc).__name__}: {mask_url(text)}",
        settings.table,
    )


def backlog_of(table: str, found: Sequence[Any]) -> dict[str, Any]:
    """What ``stats()["outbox"]`` shows of the row the backlog statement returns."""
    pending, dead, age = found
    return {"table": table, "pending": pending, "dead": dead, "oldest_pending_age": float(age)}


class OutboxWriter:
    """Writes rows to one outbox table (see the module docstring). Thread-safe, fork-safe."""

    def __init__(self, settings: OutboxSettings):
        try:
            self._psycopg = psycopg_module()
        except OutboxError as exc:  # when the config is loaded, not on the first trigger
            raise ConfigError(str(exc), "outbox") from None
        self.settings = settings
        self.statements = Statements(settings.table, settings.channel)
        self._pool: Any = None
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._pool = None  # the parent's sockets: never used nor closed here
        self._lock = threading.Lock()

    def statement(self, rows: Sequence[Row]) -> tuple[str, list[Any]]:
        """The statement writing ``rows``, and its parameters."""
        if len(rows) <= VALUES_ROWS and all(row[5] is None for row in rows):
            params = [value for row in rows for value in row[:5]]
            return self.statements.insert_values(len(rows)), params
        columns = [list(column) for column in zip(*rows, strict=True)]
        keys = columns.pop()
        if not any(key is not None for key in keys):
            return self.statements.insert, columns
        names = [f"{row[1]}\n{row[5]}" for row in rows if row[5] is not None]
        return self.statements.insert_keyed, [names, *columns, keys]

    def write(self, rows: Sequence[Row], connection: Any = None) -> None:
        """Write ``rows`` through ``connection`` (the caller's transaction), or committed at
        once through eventisc's own pool. Raises OutboxError."""
        sql, params = self.statement(rows)
        try:
            if connection is not None:
                execute(connection, sql, params)
            else:
                self._write_own(sql, params)
        except OutboxError:
            raise
        except Exception as exc:
            raise self._failure(f"cannot write {len(rows)} row(s) to", exc) from exc

    def write_dead(self, row: Row, attempts: int, error: str) -> int:
        """Write ``row`` as a ``dead`` row (``attempts`` made, ``error`` the last one), committed
        at once through eventisc's own pool: ``outbox list --state dead`` shows it, ``outbox
        replay`` delivers it again. Returns its ``seq``; raises OutboxError."""
        params = [*row[:5], attempts, error]
        try:
            with self._own_pool().connection() as conn:
                return int(conn.execute(self.statements.insert_dead, params).fetchone()[0])
        except Exception as exc:
            raise self._failure("cannot write a dead row to", exc) from exc

    def backlog(self) -> dict[str, Any]:
        """The table's ``pending`` and ``dead`` rows and ``oldest_pending_age`` (seconds),
        read through eventisc's own pool (no new connection each time). Raises OutboxError."""
        try:
            with self._own_pool().connection() as conn:
                found = conn.execute(self.statements.backlog).fetchone()
        except Exception as exc:
            raise self._failure("cannot read", exc) from exc
        return backlog_of(self.settings.table, found)

    def _failure(self, doing: str, exc: BaseException) -> OutboxError:
        if type(exc).__name__ == "PoolTimeout":  # the pool's own connect error says why
            reason = self._unreachable()
            if reason is not None:
                return failure(self.settings, doing, reason)
        return failure(self.settings, doing, exc)

    def _unreachable(self) -> BaseException | None:
        """Why no connection can be made now (None if one can)."""
        try:
            connect(self.settings).close()
        except OutboxError as exc:
            return exc.__context__ or exc
        return None

    def _write_own(self, sql: str, params: list[Any]) -> None:
        pool = self._own_pool()
        with pool.connection() as conn:
            try:
                conn.execute(sql, params)
                return
            except self._psycopg.OperationalError as exc:
                if not conn.broken:
                    raise
                # A kept connection had died (PostgreSQL restarted): the pool drops it.
                logger.info("outbox write failed (%s); writing again on a new connection", exc)
        with pool.connection() as conn:
            conn.execute(sql, params)

    def _own_pool(self) -> Any:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(self.settings)
            return self._pool

    def close(self) -> None:
        """Close eventisc's own connections (opened again if it writes again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class _Pool:
    """eventisc's own connections: a psycopg_pool ConnectionPool when installed, else one
    connection behind a lock."""

    def __init__(self, settings: OutboxSettings):
        self.settings = settings
        try:
            from psycopg_pool import ConnectionPool
        except ImportError:
            self._pool = None
            self._single: Any = None
            self._lock = threading.Lock()
            return
        self._pool = ConnectionPool(
            settings.url,
            min_size=1,
            max_size=settings.pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(settings.connect_timeout))},
            timeout=settings.connect_timeout,
            name=f"eventisc-outbox-{settings.table}",
            open=True,
        )
        # An app dropped without close() leaves its pool to the garbage collector, which may
        # run on one of the pool's own worker threads: close it from a thread that can join them.
        self._closer = weakref.finalize(self, _close_pool, self._pool)

    def connection(self) -> Any:
        if self._pool is not None:
            return self._pool.connection()
        return _Single(self)

    def close(self) -> None:
        if self._pool is not None:
            self._closer()
        elif self._single is not None:
            self._single.close()


def _close_pool(pool: Any) -> None:
    """Close ``pool``; from a new thread when this one is one of its workers (a thread cannot
    join itself, and psycopg_pool's close joins its workers)."""
    if not threading.current_thread().name.startswith(f"{pool.name}-worker-"):
        pool.close()
        return
    try:
        threading.Thread(target=pool.close, name=f"{pool.name}-closer", daemon=True).start()
    except RuntimeError:  # no new thread at interpreter shutdown: the process ends anyway
        pass


class _Single:
    """The one connection of a :class:`_Pool` without psycopg_pool, as a context manager."""

    def __init__(self, pool: _Pool):
        self.pool = pool

    def __enter__(self) -> Any:
        pool = self.pool
        pool._lock.acquire()
        if pool._single is None or pool._single.closed or pool._single.broken:
            pool._single = connect(pool.settings)
        return pool._single

    def __exit__(self, *exc_info: object) -> None:
        self.pool._lock.release()
