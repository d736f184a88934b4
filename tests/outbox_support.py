"""Helpers for the relay tests: outbox apps, the table's rows, relays in threads and processes.

``python -m tests.outbox_support CONFIG.json`` runs a relay as a separate process: it builds the
app from the JSON config (its ``_relay`` key holds the ``run_relay`` arguments), runs the relay
with the signal handlers installed, prints the relay's ``stats()`` as JSON on stdout and exits
with the relay's status.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import eventisc
from eventisc._spool_codec import decode_payload
from eventisc.outbox.relay import Relay

from .receiver import Receiver, Request

__all__ = [
    "body_numbers",
    "config",
    "due_in",
    "hook",
    "listening",
    "outbox_app",
    "relay_process",
    "relay_thread",
    "row_numbers",
    "stored",
    "whole",
    "write",
]

ROOT = Path(__file__).resolve().parent.parent


def hook(receiver: Receiver, name: str = "hook", event_name: str = "e", **options: Any) -> dict:
    """An http listener posting the event data as JSON to ``receiver`` at ``/NAME``."""
    return {
        "kind": "http",
        "name": name,
        "event_name": event_name,
        "url": f"{receiver.url}/{name}",
        "data": "{event_data}",
        **options,
    }


def config(
    url: str, table: str, listeners: Sequence[Mapping[str, Any]], **outbox: Any
) -> dict[str, Any]:
    """The config mapping of an outbox app: every listener delivers through ``table``."""
    return {
        "delivery": "outbox",
        "outbox": {"url": url, "table": table, **outbox},
        "listeners": [dict(listener) for listener in listeners],
    }


def outbox_app(url: str, table: str, *listeners: Mapping[str, Any], **outbox: Any) -> eventisc.App:
    return eventisc.App.from_config(config(url, table, listeners, **outbox))


def write(url: str, app: eventisc.App, numbers: Sequence[int], event_name: str = "e",
          **data: Any) -> None:  # fmt: skip
    """Trigger ``event_name`` with ``{"n": n, **data}`` for each n, in one committed
    transaction."""
    with psycopg.connect(url) as conn:
        for n in numbers:
            app.trigger(event_name, {"n": n, **data}, connection=conn)
        conn.commit()


def stored(url: str, table: str, where: str = "TRUE") -> list[dict[str, Any]]:
    """The table's rows (``where`` selects them), oldest first, as dicts; ``n`` is the event
    data's ``n`` read back from the payload."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(
            "SELECT seq, id, listener, kind, payload, ordering_key, state, attempts, "
            "extract(epoch FROM due_at - updated_at)::float8 AS delay, locked_until, "
            "locked_by, last_error, (locked_until > now()) AS leased "
            f"FROM {table} WHERE {where} ORDER BY seq"
        )
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, record, strict=True)) for record in cursor.fetchall()]
    for row in rows:
        row["n"] = _number(row["payload"])
    return rows


def _number(payload: str) -> int | None:
    try:
        return json.loads(decode_payload(payload)["body"])["n"]
    except (ValueError, KeyError, TypeError):
        return None


def row_numbers(url: str, table: str, where: str = "TRUE") -> list[int | None]:
    return [row["n"] for row in stored(url, table, where)]


def due_in(url: str, table: str, seq: int) -> float:
    """Seconds until row ``seq`` is due (negative: overdue)."""
    with psycopg.connect(url, autocommit=True) as conn:
        record = conn.execute(
            f"SELECT extract(epoch FROM due_at - now())::float8 FROM {table} WHERE seq = %s", [seq]
        ).fetchone()
    assert record is not None, f"row {seq} is gone"
    return float(record[0])


def whole(requests: Sequence[Request]) -> list[Request]:
    """The requests received whole: one cut short by a killed sender is not one a receiver
    would take."""
    return [r for r in requests if len(r.body) == int(r.headers.get("Content-Length", -1))]


def body_numbers(requests: Sequence[Request], path: str | None = None) -> list[int]:
    """The ``n`` of every request received whole (at ``path`` when given), in arrival order."""
    return [r.json["n"] for r in whole(requests) if path is None or r.path == path]


@contextmanager
def relay_thread(app: eventisc.App, **options: Any) -> Iterator[Relay]:
    """A relay of ``app`` running in a thread; stopped (and its exit status checked) at the end."""
    relay = Relay(app, **options)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(relay.run()), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stop()
        thread.join(30)
        assert not thread.is_alive(), "the relay did not stop"
    assert status == [0]


def relay_process(tmp_path: Path, settings: Mapping[str, Any], **run: Any) -> subprocess.Popen:
    """``python -m tests.outbox_support``: a relay of the app ``settings`` describe in a process
    of its own, with the ``run_relay`` arguments ``run``; stdout gets its stats as JSON."""
    path = tmp_path / f"relay-{os.urandom(4).hex()}.json"
    path.write_text(json.dumps({**settings, "_relay": run}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTISC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_support", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def listening(url: str, table: str) -> int:
    """How many sessions wait on ``table``'s channel (their last statement was its LISTEN)."""
    with psycopg.connect(url, autocommit=True) as conn:
        record = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s", [f"LISTEN {table}"]
        ).fetchone()
    return int(record[0]) if record else 0


def main(argv: Sequence[str]) -> int:
    settings = json.loads(Path(argv[1]).read_text())
    run = settings.pop("_relay", {})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    app = eventisc.App.from_config(settings)
    status = app.run_relay(**run)
    print(json.dumps(app.stats()["relay"]), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
