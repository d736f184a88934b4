"""The outbox table and every statement eventisc runs on it, in one place.

One row per notification: ``seq`` orders rows as they were written (and, for rows of one
ordering key, as their transactions committed: writers of one key take a transaction-scoped
advisory lock first), ``id`` is the notification id receivers deduplicate with, ``payload`` the
rendered payload as the spool stores it (JSON, bytes kept). A relay claims due rows by setting
``locked_until`` (its lease) in a short transaction of its own; it never holds a transaction
open while it delivers.

States: ``pending`` (to deliver, now or at ``due_at``), ``dead`` (retries exhausted; kept until
replayed or purged), ``delivered`` (only with ``retain_delivered``: kept that long, then
deleted).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Statements", "ddl"]

#: Columns a claim returns, in this order (:class:`eventisc.outbox.relay.Row`).
ROW_COLUMNS = "seq, id, listener, kind, event_name, payload, ordering_key, attempts"


def ddl(table: str) -> str:
    """The DDL of the outbox table ``table`` (idempotent: ``IF NOT EXISTS``)."""
    short = table.rsplit(".", 1)[-1]
    return f"""\
CREATE TABLE IF NOT EXISTS {table} (
    seq          bigserial PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    listener     text NOT NULL,
    kind         text NOT NULL,
    event_name   text NOT NULL,
    payload      text NOT NULL,
    ordering_key text,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'dead', 'delivered')),
    attempts     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    due_at       timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by    text,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {short}_due ON {table} (due_at, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS {short}_key ON {table} (listener, ordering_key, seq)
    WHERE ordering_key IS NOT NULL AND state <> 'delivered';
CREATE INDEX IF NOT EXISTS {short}_state ON {table} (state, listener);
"""


@dataclass(frozen=True)
class Statements:
    """The statements on one outbox table (``%s`` placeholders, psycopg's and DB-API's
    ``format`` style)."""

    table: str
    channel: str

    # -- writing (in the caller's transaction) ----------------------------------------------

    @property
    def insert(self) -> str:
        """Insert rows given as parallel arrays (id, listener, kind, event_name, payload),
        then NOTIFY the relays (delivered at commit, so they hear only of committed rows).
        A row whose id is there already is left as it is: writing again is harmless."""
        return (
            f"WITH ins AS (INSERT INTO {self.table} "
            "(id, listener, kind, event_name, payload) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (id) DO NOTHING RETURNING 1) "
            f"SELECT pg_notify('{self.channel}', ''), (SELECT count(*) FROM ins)"
        )

    def insert_values(self, rows: int) -> str:
        """:attr:`insert` for ``rows`` rows without ordering keys, their values as plain
        parameters (five per row): cheaper to bind than arrays, for the common trigger."""
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * rows)
        return (
            f"WITH ins AS (INSERT INTO {self.table} "
            f"(id, listener, kind, event_name, payload) VALUES {values} "
            "ON CONFLICT (id) DO NOTHING RETURNING 1) "
            f"SELECT pg_notify('{self.channel}', ''), (SELECT count(*) FROM ins)"
        )

    @property
    def insert_keyed(self) -> str:
        """:attr:`insert` with ordering keys (a sixth array): first a transaction-scoped
        advisory lock per (listener, key), so writers of one key commit in ``seq`` order."""
        return (
            "WITH locks AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM (SELECT DISTINCT unnest(%s::text[]) AS k ORDER BY 1) AS keys), "
            f"ins AS (INSERT INTO {self.table} "
            "(id, listener, kind, event_name, payload, ordering_key) "
            "SELECT r.* FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[]) AS r, (SELECT count(*) FROM locks) AS l "
            "ON CONFLICT (id) DO NOTHING RETURNING 1) "
            f"SELECT pg_notify('{self.channel}', ''), (SELECT count(*) FROM ins)"
        )

    @property
    def insert_dead(self) -> str:
        """One row (id, listener, kind, event_name, payload, attempts, last_error) written
        ``dead``: a notification a Celery worker gave up on. A row of that id already there
        becomes dead with this error and count. Returns the row's ``seq``."""
        return (
            f"INSERT INTO {self.table} "
            "(id, listener, kind, event_name, payload, state, attempts, last_error) "
            "VALUES (%s, %s, %s, %s, %s, 'dead', %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET state = 'dead', attempts = EXCLUDED.attempts, "
            "last_error = EXCLUDED.last_error, locked_until = NULL, locked_by = NULL, "
            "updated_at = now() RETURNING seq"
        )

    # -- relays ----------------------------------------------------------------------------

    @property
    def listen(self) -> str:
        return f"LISTEN {self.channel}"

    @property
    def claim(self) -> str:
        """Lease up to %(batch)s due rows for %(lease)s seconds to relay %(relay)s. A row of an
        ordering key is due only when no earlier row of its key is pending (claimed or not)
        or dead and blocking (its listener is not in %(skip_dead)s)."""
        t = self.table
        return (
            f"WITH due AS (SELECT o.seq FROM {t} o "
            "WHERE o.state = 'pending' AND o.due_at <= now() "
            "AND (o.locked_until IS NULL OR o.locked_until < now()) "
            "AND (o.ordering_key IS NULL OR NOT EXISTS ("
            f"SELECT 1 FROM {t} p WHERE p.listener = o.listener "
            "AND p.ordering_key = o.ordering_key AND p.seq < o.seq "
            "AND (p.state = 'pending' OR (p.state = 'dead' "
            "AND NOT p.listener = ANY(%(skip_dead)s::text[]))))) "
            "ORDER BY o.seq LIMIT %(batch)s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {t} SET locked_until = now() + make_interval(secs => %(lease)s), "
            "locked_by = %(relay)s, updated_at = now() "
            f"FROM due WHERE {t}.seq = due.seq RETURNING {_qualified(t, ROW_COLUMNS)}"
        )

    @property
    def delete_delivered(self) -> str:
        return f"DELETE FROM {self.table} WHERE seq = ANY(%s::bigint[])"

    @property
    def mark_delivered(self) -> str:
        return (
            f"UPDATE {self.table} SET state = 'delivered', attempts = attempts + 1, "
            "locked_until = NULL, locked_by = NULL, last_error = NULL, updated_at = now() "
            "WHERE seq = ANY(%s::bigint[])"
        )

    @property
    def retry(self) -> str:
        """Rows (seq, delay seconds, error) back to pending, due after their delay; only
        those still leased to relay %s (a late outcome never undoes another relay's claim)."""
        t = self.table
        return (
            f"UPDATE {t} SET attempts = {t}.attempts + 1, "
            "due_at = now() + make_interval(secs => r.delay), locked_until = NULL, "
            "locked_by = NULL, last_error = r.error, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::float8[], %s::text[]) AS r(seq, delay, error) "
            f"WHERE {t}.seq = r.seq AND {t}.locked_by = %s"
        )

    @property
    def dead(self) -> str:
        """Rows (seq, error) dead: retries exhausted or a failure never retried; only those
        still leased to relay %s."""
        t = self.table
        return (
            f"UPDATE {t} SET state = 'dead', attempts = {t}.attempts + 1, "
            "locked_until = NULL, locked_by = NULL, last_error = r.error, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::text[]) AS r(seq, error) "
            f"WHERE {t}.seq = r.seq AND {t}.locked_by = %s"
        )

    @property
    def release(self) -> str:
        """Give back the leases of rows not attempted (a relay stopping), and wake the other
        relays for them; returns how many."""
        return (
            f"WITH r AS (UPDATE {self.table} SET locked_until = NULL, locked_by = NULL, "
            "updated_at = now() WHERE seq = ANY(%s::bigint[]) AND locked_by = %s RETURNING 1) "
            f"SELECT pg_notify('{self.channel}', ''), (SELECT count(*) FROM r)"
        )

    @property
    def purge_retained(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE state = 'delivered' "
            "AND updated_at < now() - make_interval(secs => %s)"
        )

    @property
    def next_due(self) -> str:
        """Seconds until the next pending row is due or its lease runs out (NULL: none)."""
        return (
            "SELECT extract(epoch FROM min(greatest(due_at, coalesce(locked_until, due_at))) "
            f"- now()) FROM {self.table} WHERE state = 'pending'"
        )

    # -- looking in ------------------------------------------------------------------------

    @property
    def backlog(self) -> str:
        """Pending and dead rows, and the age in seconds of the oldest pending one."""
        return (
            "SELECT count(*) FILTER (WHERE state = 'pending'), "
            "count(*) FILTER (WHERE state = 'dead'), "
            "coalesce(extract(epoch FROM now() - min(created_at) "
            "FILTER (WHERE state = 'pending')), 0)::float8 "
            f"FROM {self.table}"
        )


def _qualified(table: str, columns: str) -> str:
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))
