"""``eventisc outbox ...`` and ``eventisc relay`` as users run them."""

from __future__ import annotations

import json

import psycopg
import pytest

from .support import run_cli


@pytest.fixture
def config(tmp_path, postgres_url, outbox_table):
    path = tmp_path / "events.yaml"
    path.write_text(
        f"""\
delivery: outbox
outbox: {{url: "{postgres_url}", table: {outbox_table}}}
listeners:
  - kind: http
    name: orders
    event_name: order_paid
    url: http://127.0.0.1:9/orders
    headers: {{Authorization: "Bearer s3cret"}}
    data: {{order: "{{event_data['order']}}"}}
    ordering_key: "{{event_data['order']}}"
  - kind: http
    name: audit
    event_name: order_paid
    url: http://127.0.0.1:9/audit
    ordering_key: "{{event_data['order']}}"
    on_dead: skip
"""
    )
    return str(path)


def rows(url, table):
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT seq, listener, state FROM {table} ORDER BY seq").fetchall()


def test_sql_prints_the_ddl_for_a_table_name():
    out = run_cli("outbox", "sql", "--table", "app.events_outbox")
    assert out.returncode == 0, out.stderr
    assert "CREATE TABLE IF NOT EXISTS app.events_outbox (" in out.stdout
    assert "events_outbox_due" in out.stdout
    bad = run_cli("outbox", "sql", "--table", "Robert'); DROP TABLE students;--")
    assert bad.returncode == 1 and "outbox.table" not in bad.stdout
    assert "SQL name" in bad.stderr


def test_sql_takes_the_table_of_a_config(config, outbox_table):
    out = run_cli("outbox", "sql", config)
    assert f"CREATE TABLE IF NOT EXISTS {outbox_table} (" in out.stdout


def test_init_creates_the_table(tmp_path, postgres_url):
    table = f"eventisc_init_{tmp_path.name[-8:].lower().replace('-', '_')}"
    path = tmp_path / "c.yaml"
    path.write_text(f'outbox: {{url: "{postgres_url}", table: {table}}}\n')
    try:
        for _ in range(2):  # idempotent
            out = run_cli("outbox", "init", str(path))
            assert out.returncode == 0, out.stderr
            assert f"outbox table {table} is ready" in out.stdout
        assert rows(postgres_url, table) == []
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_list_show_replay_purge(config, postgres_url, outbox_table):
    trigger = run_cli("trigger", config, "order_paid", "--data", '{"order": 7}')
    assert trigger.returncode == 0, trigger.stderr
    assert "OUTBOXED" in trigger.stdout
    run_cli("trigger", config, "order_paid", "--data", '{"order": 7}')
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            f"UPDATE {outbox_table} SET state = 'dead', last_error = 'HTTP 410' "
            f"WHERE seq IN (SELECT min(seq) FROM {outbox_table} GROUP BY listener)"
        )
    listed = run_cli("outbox", "list", config)
    assert listed.returncode == 0, listed.stderr
    assert f"{outbox_table}: 4 row(s)" in listed.stdout
    assert listed.stdout.count("dead") == 2 and "HTTP 410" in listed.stdout
    assert "key=7" in listed.stdout
    # Only the orders row holds its key back: audit's listener skips dead rows.
    blocked = run_cli("outbox", "list", config, "--blocked")
    assert "1 dead row(s) holding back" in blocked.stdout
    assert "orders" in blocked.stdout and "audit" not in blocked.stdout.split("ERROR", 1)[1]

    seq = rows(postgres_url, outbox_table)[0][0]
    shown = run_cli("outbox", "show", config, str(seq))
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["state"] == "dead" and data["listener"] == "orders"
    assert data["payload"]["headers"]["Authorization"] == "***"
    assert "s3cret" not in shown.stdout
    by_id = json.loads(run_cli("outbox", "show", config, data["id"]).stdout)
    assert by_id["seq"] == seq
    missing = run_cli("outbox", "show", config, "999999")
    assert missing.returncode == 1 and "no row 999999" in missing.stdout

    replayed = run_cli("outbox", "replay", config, "--listener", "orders")
    assert "1 dead row(s) back to pending" in replayed.stdout
    states = {(listener, state) for _, listener, state in rows(postgres_url, outbox_table)}
    assert states == {("orders", "pending"), ("audit", "dead"), ("audit", "pending")}

    purged = run_cli("outbox", "purge", config)
    assert "removed 1 row(s)" in purged.stdout
    purged = run_cli("outbox", "purge", config, "--all-states")
    assert "removed 3 row(s)" in purged.stdout
    assert rows(postgres_url, outbox_table) == []


def test_commands_need_an_outbox(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("listeners: []\n")
    out = run_cli("outbox", "list", str(path))
    assert out.returncode == 1
    assert "this config has no `outbox`" in out.stderr


def test_an_unreachable_database_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('outbox: {url: "postgresql://u:s3cret@127.0.0.1:1/db", connect_timeout: 1}\n')
    out = run_cli("outbox", "list", str(path))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "s3cret" not in out.stderr
    assert "cannot connect to the outbox table eventisc_outbox" in out.stderr


def test_check_shows_outbox_delivery_and_ordering(config):
    out = run_cli("check", config)
    assert out.returncode == 0, out.stderr
    assert (
        "delivery: outbox, up to 5 attempts, ordered by {event_data['order']} (on_dead: block)"
        in out.stdout
    )
    assert "(on_dead: skip)" in out.stdout
