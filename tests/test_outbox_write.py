"""Writing to the outbox: rows in the caller's transaction (psycopg, SQLAlchemy, DB-API),
eventisc's own connections, one statement per trigger, errors that reach the caller."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

import eventisc
from eventisc import ConfigError, OutboxError
from eventisc._spool_codec import decode_payload
from eventisc.outbox.admin import Filters, rows

from .support import http, wait_for

HOOK = "http://127.0.0.1:9/hook"


def app_for(url: str, table: str, *listeners: dict[str, Any], **options: Any) -> eventisc.App:
    return eventisc.App(
        listeners=listeners or [http(HOOK, "user_created", name="hook", data="{event_data}")],
        delivery="outbox",
        outbox={"url": url, "table": table},
        **options,
    )


def stored(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT id, listener, kind, event_name, payload, ordering_key, state, attempts "
            f"FROM {table} ORDER BY seq"
        ).fetchall()


@pytest.fixture
def app(postgres_url: str, outbox_table: str) -> Any:
    with app_for(postgres_url, outbox_table) as app:
        yield app


def test_commit_keeps_the_rows_and_rollback_leaves_none(app, postgres_url, outbox_table):
    with psycopg.connect(postgres_url) as conn:
        assert app.trigger("user_created", {"n": 1}, connection=conn) == 1
        assert stored(postgres_url, outbox_table) == []  # not visible before the commit
        conn.commit()
        app.trigger("user_created", {"n": 2}, connection=conn)
        conn.rollback()
    rows_ = stored(postgres_url, outbox_table)
    assert len(rows_) == 1
    _id, listener, kind, event_name, payload, key, state, attempts = rows_[0]
    assert (listener, kind, event_name, key, state, attempts) == (
        "hook", "http", "user_created", None, "pending", 0,
    )  # fmt: skip
    body = json.loads(decode_payload(payload)["body"])
    assert body == {"n": 1}


def test_the_row_has_the_notification_id_the_report_shows(app, postgres_url, outbox_table):
    with psycopg.connect(postgres_url) as conn:
        report = app.dispatch("user_created", {"n": 1}, connection=conn)
        conn.commit()
    delivery = report["hook"]
    assert delivery.status == "outboxed" and delivery.ok and report.done
    assert stored(postgres_url, outbox_table)[0][0] == delivery.notification.id


def test_without_a_connection_the_rows_are_committed_before_trigger_returns(
    app, postgres_url, outbox_table
):
    assert app.trigger("user_created", {"n": 1}) == 1
    assert len(stored(postgres_url, outbox_table)) == 1
    assert app.stats()["app"]["outboxed"] == 1
    assert app.stats()["outbox"] == {
        "table": outbox_table,
        "pending": 1,
        "dead": 0,
        "oldest_pending_age": pytest.approx(0, abs=5),
    }


def test_sqlalchemy_connection_and_session(app, postgres_url, outbox_table):
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            app.trigger("user_created", {"n": "connection"}, connection=conn)
            conn.commit()
            app.trigger("user_created", {"n": "rolled back"}, connection=conn)
            conn.rollback()
        with Session(engine) as session:
            app.trigger("user_created", {"n": "session"}, connection=session)
            session.commit()
            app.trigger("user_created", {"n": "rolled back"}, connection=session)
            session.rollback()
    finally:
        engine.dispose()
    found = stored(postgres_url, outbox_table)
    bodies = [json.loads(decode_payload(row[4])["body"])["n"] for row in found]
    assert bodies == ["connection", "session"]


class DBAPIConnection:
    """A DB-API connection as Django's wraps one: only ``cursor()``; counts statements."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn
        self.statements = 0

    def cursor(self) -> Any:
        return CountingCursor(self, self.conn.cursor())


class CountingCursor:
    def __init__(self, owner: DBAPIConnection, cursor: Any):
        self.owner = owner
        self.cursor = cursor

    def execute(self, sql: str, params: Any = None) -> Any:
        self.owner.statements += 1
        return self.cursor.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def test_a_dbapi_connection_and_one_statement_for_all_listeners(postgres_url, outbox_table):
    listeners = [http(HOOK, "user_created", name=f"hook{i}", data="{event_data}") for i in range(5)]
    app = app_for(postgres_url, outbox_table, *listeners)
    with app, psycopg.connect(postgres_url) as pg:
        conn = DBAPIConnection(pg)
        assert app.trigger("user_created", {"n": 1}, connection=conn) == 5
        assert conn.statements == 1
        pg.commit()
    assert [row[1] for row in stored(postgres_url, outbox_table)] == [f"hook{i}" for i in range(5)]


def test_module_level_trigger_takes_the_connection(postgres_url, outbox_table, monkeypatch):
    eventisc.init_default_app(
        listeners=[http(HOOK, "user_created", name="hook")],
        delivery="outbox",
        outbox={"url": postgres_url, "table": outbox_table},
    )
    try:
        with psycopg.connect(postgres_url) as conn:
            assert eventisc.trigger("user_created", {"n": 1}, connection=conn) == 1
            conn.rollback()
        assert stored(postgres_url, outbox_table) == []
    finally:
        eventisc.default_app.close()  # type: ignore[union-attr]


def test_atrigger_takes_the_connection(app, postgres_url, outbox_table):
    import asyncio

    with psycopg.connect(postgres_url) as conn:
        assert asyncio.run(app.atrigger("user_created", {"n": 1}, connection=conn)) == 1
        conn.commit()
    assert len(stored(postgres_url, outbox_table)) == 1


def test_sync_and_outbox_listeners_in_one_app(postgres_url, outbox_table, receiver):
    listeners = [
        http(receiver.url + "/now", "user_created", name="now", delivery="sync"),
        http(HOOK, "user_created", name="later"),
    ]
    with app_for(postgres_url, outbox_table, *listeners) as app:
        report = app.dispatch("user_created", {"n": 1})
    assert [(d.name, d.status) for d in report] == [("now", "delivered"), ("later", "outboxed")]
    assert len(receiver.requests) == 1
    assert [row[1] for row in stored(postgres_url, outbox_table)] == ["later"]


def test_bytes_payloads_and_ordering_keys_are_stored(postgres_url, outbox_table):
    listener = {"kind": "rabbit", "event_name": "paid", "name": "keyed",
                "url": "amqp://guest:guest@127.0.0.1:1/", "publish_kwargs": {"routing_key": "q"},
                "body": "{event_data['raw']}", "ordering_key": "{event_data['order']}"}  # fmt: skip
    with app_for(postgres_url, outbox_table, listener) as app:
        app.trigger("paid", {"order": 42, "raw": b"\x00\xffbytes"})
    row = stored(postgres_url, outbox_table)[0]
    assert row[5] == "42"
    assert decode_payload(row[4])["body"] == b"\x00\xffbytes"


def test_a_failing_ordering_key_fails_only_its_listener(postgres_url, outbox_table):
    listeners = [
        http(HOOK, "paid", name="keyed", ordering_key="{event_data['order']}"),
        http(HOOK, "paid", name="plain"),
    ]
    with app_for(postgres_url, outbox_table, *listeners) as app:
        report = app.dispatch("paid", {"no_order": 1})
    assert report["keyed"].status == "failed"
    assert "order" in str(report["keyed"].error)
    assert report["plain"].status == "outboxed"
    assert [row[1] for row in stored(postgres_url, outbox_table)] == ["plain"]


def test_an_unreachable_database_raises_outbox_error_whatever_raise_errors_says(caplog):
    app = eventisc.App(
        listeners=[http(HOOK, "user_created", name="hook")],
        delivery="outbox",
        outbox={"url": "postgresql://postgres:s3cret@127.0.0.1:1/test", "connect_timeout": 1},
    )
    with app, pytest.raises(OutboxError) as info:
        app.trigger("user_created")
    text = str(info.value)
    assert "eventisc_outbox" in text and "127.0.0.1:1" in text and "s3cret" not in text
    assert "refused" in text.lower()
    assert "s3cret" not in caplog.text
    assert app.stats()["app"]["failed"] == 1
    assert "error" in app.stats()["outbox"]


def test_a_failed_transaction_raises_outbox_error(app, postgres_url):
    with psycopg.connect(postgres_url) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        with pytest.raises(OutboxError, match="InFailedSqlTransaction"):
            app.trigger("user_created", connection=conn)
        conn.rollback()


def test_a_missing_table_raises_outbox_error(postgres_url):
    with app_for(postgres_url, "eventisc_no_such_table") as app:
        with pytest.raises(OutboxError, match="eventisc_no_such_table"):
            app.trigger("user_created")


def test_writing_again_after_postgresql_dropped_the_connection(app, postgres_url, outbox_table):
    app.trigger("user_created", {"n": 1})
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE %s",
            [f"WITH ins AS (INSERT INTO {outbox_table} %"],
        ).fetchall()
    assert killed == [(True,)]  # the pooled connection eventisc wrote with
    app.trigger("user_created", {"n": 2})
    assert len(stored(postgres_url, outbox_table)) == 2


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"delivery": "outbox"}, "delivery", "needs an `outbox`"),
        ({"outbox": {"url": "postgresql://x", "table": "Bad-Name"}}, "outbox.table", "SQL name"),
        ({"outbox": {"url": "postgresql://x", "batch": 0}}, "outbox.batch", "minimum"),
        ({"outbox": {"url": "postgresql://x", "lease": -1}}, "outbox.lease", ""),
        ({"outbox": {"url": "postgresql://x", "bach": 1}}, "outbox", "bach"),
        ({"outbox": {}}, "outbox", "url"),
    ],
)
def test_bad_outbox_config_is_a_config_error_with_its_path(config, path, message):
    full = {"listeners": [http(HOOK, "e")], **config}
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=full)
    assert info.value.path is not None and info.value.path.startswith(path), info.value
    assert message in str(info.value)


def test_listener_options_of_the_outbox_are_checked_at_load():
    outbox = {"url": "postgresql://x"}
    with pytest.raises(ConfigError, match="needs `delivery: outbox`") as info:
        eventisc.create_app(config_file={
            "outbox": outbox, "listeners": [http(HOOK, "e", ordering_key="{event_name}")],
        })  # fmt: skip
    assert info.value.path == "listeners[0].ordering_key"
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file={
            "outbox": outbox, "delivery": "outbox",
            "listeners": [http(HOOK, "e", ordering_key="{event_data[}")],
        })  # fmt: skip
    assert info.value.path is not None and "ordering_key" in info.value.path
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file={
            "outbox": outbox, "delivery": "outbox", "listeners": [http(HOOK, "e", on_dead="x")],
        })  # fmt: skip
    assert info.value.path is not None and "on_dead" in info.value.path


def test_outbox_settings_hide_the_password():
    app = eventisc.App(
        listeners=[http(HOOK, "e")], outbox="postgresql://u:s3cret@127.0.0.1:5432/db"
    )
    settings = app._deliverer.outbox_settings
    assert "s3cret" not in repr(settings) and "***" in repr(settings)


def test_rows_are_readable_by_the_admin_functions(app, postgres_url, outbox_table):
    app.trigger("user_created", {"n": 1})
    settings = app._deliverer.outbox_settings
    found = rows(settings, Filters(state="pending"))
    assert [(row.listener, row.state, row.attempts) for row in found] == [("hook", "pending", 0)]


def test_prometheus_exports_the_backlog(app, postgres_url, outbox_table):
    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    app.register_prometheus(registry)
    app.trigger("user_created", {"n": 1})
    app.trigger("user_created", {"n": 2})
    assert registry.get_sample_value("eventisc_outbox_pending", {"app": "eventisc"}) == 2
    assert registry.get_sample_value("eventisc_outbox_dead", {"app": "eventisc"}) == 0
    assert registry.get_sample_value("eventisc_outbox_readable", {"app": "eventisc"}) == 1
    assert (
        registry.get_sample_value(
            "eventisc_deliveries_total",
            {"app": "eventisc", "listener": "hook", "outcome": "outboxed"},
        )
        == 2
    )
    age = registry.get_sample_value("eventisc_outbox_oldest_pending_seconds", {"app": "eventisc"})
    assert age is not None and 0 <= age < 60


def test_many_rows_of_one_trigger_go_in_one_statement(postgres_url, outbox_table):
    # More rows than one VALUES list takes: written as arrays, still one statement.
    listeners = [http(HOOK, "bulk", name=f"hook{i}", data="{event_data}") for i in range(60)]
    app = app_for(postgres_url, outbox_table, *listeners)
    with app, psycopg.connect(postgres_url) as pg:
        conn = DBAPIConnection(pg)
        assert app.trigger("bulk", {"n": 1}, connection=conn) == 60
        assert conn.statements == 1
        pg.commit()
    assert [row[1] for row in stored(postgres_url, outbox_table)] == [f"hook{i}" for i in range(60)]


@pytest.mark.parametrize("dropped_on", ["main", "worker"])
def test_an_app_dropped_without_close_closes_its_pool(postgres_url, outbox_table, dropped_on):
    """The garbage collector may drop an unclosed app on any thread, one of the pool's own
    workers included (which cannot join itself): the pool is closed, and nothing is raised."""
    import sys
    import threading

    app = app_for(postgres_url, outbox_table)
    app.trigger("user_created", {"n": 1})  # eventisc's own pool, opened by the write
    writer = app._deliverer.outbox
    assert writer is not None
    pool = writer._own_pool()._pool
    holder = [app]
    del app, writer
    unraisable: list[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        name = f"{pool.name}-worker-7" if dropped_on == "worker" else "dropper"
        thread = threading.Thread(target=holder.clear, name=name)
        thread.start()
        thread.join()
        wait_for(lambda: pool.closed)
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
