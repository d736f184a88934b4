"""Writing through the caller's connection: whatever it is, in its open transaction.

``trigger(..., connection=conn)`` accepts a psycopg 3 connection, an SQLAlchemy ``Connection``
or ``Session``, a Django connection (``django.db.connection``), or any DB-API connection whose
driver speaks PostgreSQL with ``%s`` placeholders (psycopg2). Nothing here imports SQLAlchemy or
Django: they are recognised by what their objects have.

- psycopg 3: ``conn.execute``; inside the caller's transaction unless the connection is in
  autocommit mode (then the write commits on its own, at once).
- SQLAlchemy: ``exec_driver_sql`` on the ``Connection`` (``Session.connection()`` for a
  session), so SQLAlchemy begins its transaction as for any statement and the caller's
  ``commit()``/``rollback()`` covers the rows.
- Django and DB-API: a cursor of the connection, in its current transaction
  (``transaction.atomic()`` around the business write and ``trigger`` in Django).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["execute"]


def execute(connection: Any, sql: str, params: Sequence[Any]) -> Any:
    """Run ``sql`` with ``params`` on the caller's ``connection``; the first row of its result."""
    if _is_psycopg(connection):
        return connection.execute(sql, params).fetchone()
    session_connection = getattr(connection, "connection", None)
    if callable(session_connection) and hasattr(connection, "get_bind"):  # SQLAlchemy Session
        connection = session_connection()
    if hasattr(connection, "exec_driver_sql"):  # SQLAlchemy Connection
        return connection.exec_driver_sql(sql, tuple(params)).fetchone()
    if hasattr(connection, "cursor"):  # Django's connection, psycopg2, any DB-API connection
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()
    raise TypeError(
        "connection must be a psycopg connection, an SQLAlchemy Connection or Session, a "
        f"Django connection or a DB-API connection, not {type(connection).__name__}"
    )


def _is_psycopg(connection: Any) -> bool:
    module = type(connection).__module__
    return module.startswith("psycopg") and not module.startswith("psycopg2")
