"""Looking into the outbox table and acting on it: what ``eventisc outbox`` and ``stats()`` do.

Every function takes the app's :class:`~eventisc.settings.OutboxSettings` and opens a short
connection of its own (autocommit). Rows are selected by the same filters as the spool's
commands: state, listener, ids (``seq``), age.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import OutboxError
from ..settings import OutboxSettings
from .sql import Statements, ddl
from .writer import backlog_of, connect, failure

__all__ = ["Filters", "OutboxRow", "backlog", "blocked", "create", "get", "purge", "replay", "rows"]

_COLUMNS = (
    "seq, id, listener, kind, event_name, payload, ordering_key, state, attempts, created_at, "
    "due_at, locked_until, locked_by, last_error, updated_at"
)


@dataclass(frozen=True)
class OutboxRow:
    """One row of the outbox table, as stored (``payload`` is its stored JSON text)."""

    seq: int
    id: str
    listener: str
    kind: str
    event_name: str
    payload: str
    ordering_key: str | None
    state: str
    attempts: int
    created_at: datetime
    due_at: datetime
    locked_until: datetime | None
    locked_by: str | None
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Filters:
    """Which rows a command acts on (None: any)."""

    state: str | None = None
    listener: str | None = None
    seqs: Sequence[int] | None = None
    older_than: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (never empty) and its parameters."""
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        for column, value in (("state", self.state), ("listener", self.listener)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if self.seqs:
            clauses.append("seq = ANY(%s::bigint[])")
            params.append(list(self.seqs))
        if self.older_than is not None:
            clauses.append("created_at < now() - make_interval(secs => %s)")
            params.append(self.older_than)
        return " AND ".join(clauses), params


def _run(settings: OutboxSettings, doing: str, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement on a connection of its own; the cursor's rows, or its rowcount."""
    conn = connect(settings)
    try:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else cursor.rowcount
    except OutboxError:
        raise
    except Exception as exc:
        raise failure(settings, doing, exc) from exc
    finally:
        conn.close()


def create(settings: OutboxSettings) -> None:
    """Create the table and its indexes (nothing happens when they exist)."""
    _run(settings, "cannot create", ddl(settings.table))


def rows(settings: OutboxSettings, filters: Filters, limit: int = 1000) -> list[OutboxRow]:
    """Rows matching ``filters``, oldest first, at most ``limit``."""
    where, params = filters.where()
    found = _run(
        settings,
        "cannot read",
        f"SELECT {_COLUMNS} FROM {settings.table} WHERE {where} ORDER BY seq LIMIT %s",
        [*params, limit],
    )
    return [OutboxRow(*row) for row in found]


def get(settings: OutboxSettings, key: str) -> OutboxRow | None:
    """The row whose ``seq`` (digits) or notification id is ``key``."""
    column, value = ("seq", int(key)) if key.isdigit() else ("id", key)
    found = _run(
        settings,
        "cannot read",
        f"SELECT {_COLUMNS} FROM {settings.table} WHERE {column} = %s",
        [value],
    )
    return OutboxRow(*found[0]) if found else None


def blocked(settings: OutboxSettings, skip_dead: Sequence[str]) -> list[OutboxRow]:
    """Dead rows that hold back later rows of their ordering key (their listener blocks)."""
    t = settings.table
    found = _run(
        settings,
        "cannot read",
        f"SELECT {_COLUMNS} FROM {t} d WHERE d.state = 'dead' AND d.ordering_key IS NOT NULL "
        "AND NOT d.listener = ANY(%s::text[]) AND EXISTS (SELECT 1 FROM "
        f"{t} p WHERE p.listener = d.listener AND p.ordering_key = d.ordering_key "
        "AND p.seq > d.seq AND p.state = 'pending') ORDER BY d.seq",
        [list(skip_dead)],
    )
    return [OutboxRow(*row) for row in found]


def waiting_behind(settings: OutboxSettings, row: OutboxRow) -> int:
    """How many pending rows of ``row``'s ordering key come after it."""
    found = _run(
        settings,
        "cannot read",
        f"SELECT count(*) FROM {settings.table} WHERE listener = %s AND ordering_key = %s "
        "AND seq > %s AND state = 'pending'",
        [row.listener, row.ordering_key, row.seq],
    )
    return int(found[0][0])


def replay(settings: OutboxSettings, filters: Filters) -> int:
    """Dead rows back to pending, due now, attempts from 0: relays deliver them (in ``seq``
    order within an ordering key). Returns how many."""
    where, params = Filters("dead", filters.listener, filters.seqs, filters.older_than).where()
    return int(
        _run(
            settings,
            "cannot replay in",
            f"UPDATE {settings.table} SET state = 'pending', attempts = 0, due_at = now(), "
            f"locked_until = NULL, locked_by = NULL, updated_at = now() WHERE {where}",
            params,
        )
    )


def purge(settings: OutboxSettings, filters: Filters) -> int:
    """Delete the rows matching ``filters``; returns how many."""
    where, params = filters.where()
    return int(
        _run(settings, "cannot purge", f"DELETE FROM {settings.table} WHERE {where}", params)
    )


def backlog(settings: OutboxSettings) -> dict[str, Any]:
    """``pending`` and ``dead`` rows, and ``oldest_pending_age`` (seconds; 0 with none)."""
    found = _run(settings, "cannot read", Statements(settings.table, settings.channel).backlog)
    return backlog_of(settings.table, found[0])
