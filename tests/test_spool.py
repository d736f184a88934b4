"""The spool: a real SQLite file under tmp_path, real threads, real child processes.

Processes that die are real processes killed with SIGKILL; nothing about sqlite is mocked.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventisc.errors import TemplateError
from eventisc.notification import Notification
from eventisc.spool import (
    DEAD,
    PENDING,
    SCHEMA_VERSION,
    UNREADABLE,
    Spool,
    SpoolError,
    SpoolItem,
    UnreadableEntry,
    owner_id,
    parse_age,
)

from .support import Clock, corrupt, wait_for_child

REPO = str(Path(__file__).resolve().parents[1])
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and pids")


def note(listener: str = "hook", n: int = 0, **payload: object) -> Notification:
    return Notification(listener, "http", "user_created", {"n": n, **payload})


def start_child(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a new Python process that imports eventisc from this checkout."""
    prelude = f"import sys; sys.path.insert(0, {REPO!r})\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


# -- payloads -----------------------------------------------------------------------------------


def test_payloads_with_bytes_nested_values_and_unicode_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    payload = {
        "exchange": "",
        "body": bytes(range(256)),  # not UTF-8: must come back byte for byte
        "empty": b"",
        "properties": {"headers": {"x-raw": b"\x00\xff", "x-list": [b"a", {"deep": b"b"}]}},
        "text": "héllo wörld ✓ 🎉 \u0000 \u2028",
        "numbers": [1, 2.5, -3, None, True, False, 10**20],
        "nested": {"a": {"b": {"c": [[], {}, ""]}}},
    }
    notification = Notification("queue", "rabbit", "ünïcode.event", payload)
    entry_id = spool.add(notification)
    entry = spool.get(entry_id)
    assert entry is not None
    assert entry.notification == notification  # its id included
    assert type(entry.notification.payload["body"]) is bytes
    # The stored form is JSON a person can read with the sqlite3 shell.
    raw = sqlite3.connect(tmp_path / "spool.db").execute("SELECT payload FROM entries").fetchone()
    assert '"text":"héllo wörld ✓ 🎉' in raw[0]
    assert '{"$bytes":"' in raw[0]


def test_other_values_come_back_in_their_json_form(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    at = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    payload = {
        "at": at,
        "day": at.date(),
        "price": decimal.Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "args": (1, "two", b"3"),
        "tags": {"only"},
        "buffer": bytearray(b"xyz"),
        7: "int key",
    }
    entry = spool.get(spool.add(note(payload=payload)))
    assert entry is not None
    assert entry.notification.payload["payload"] == {
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "price": "9.90",
        "id": "00000000-0000-0000-0000-000000000001",
        "args": [1, "two", b"3"],
        "tags": ["only"],
        "buffer": b"xyz",
        "7": "int key",
    }


def test_user_dicts_that_look_like_the_codecs_tags_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    payload = {
        "a": {"$bytes": "aGk="},  # user data, not bytes
        "b": {"$dict": [["k", 1]]},
        "c": {"$bytes": {"$dict": b"\x01"}},
        "d": {"$set": 1, "$bytes": "x"},  # two keys: never a tag
        "e": '"$bytes"',
    }
    entry = spool.get(spool.add(Notification("l", "http", "e", payload)))
    assert entry is not None and entry.notification.payload == payload


def test_an_unencodable_payload_is_a_template_error_naming_the_listener(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")

    class Model:
        pass

    cycle: dict[str, object] = {}
    cycle["self"] = cycle
    for payload, message in [
        ({"user": Model()}, "Model is not JSON serializable"),
        ({"body": b"ok", "user": {"x": Model()}}, "Model is not JSON serializable"),
        ({"loop": cycle}, "contains itself"),
    ]:
        with pytest.raises(TemplateError) as info:
            spool.add(Notification("crm", "http", "user_created", payload))
        assert info.value.listener == "crm"
        assert str(info.value).startswith("listener 'crm': cannot store the payload in the spool")
        assert message in str(info.value)
    assert spool.count() == 0


# -- the file -------------------------------------------------------------------------------------


def test_the_file_and_its_directories_are_created_in_wal_mode_with_a_schema_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a" / "b" / "spool.db"
    spool = Spool(path)
    assert spool.path == str(path) and repr(spool) == f"<Spool {str(path)!r}>"
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    raw.close()
    spool.close()
    assert Spool(path).count() == 0  # reopening an existing spool keeps it


def test_close_then_use_again_reopens(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        first = spool.add(note())
    assert spool._db is None
    assert spool.get(first) is not None and spool.add(note()) > first


# -- states and transitions -------------------------------------------------------------------


def test_states_and_transitions(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    entry_id = spool.add(note(n=1), state=PENDING, reason="durable")
    entry = spool.get(entry_id)
    assert entry is not None
    assert (entry.state, entry.reason, entry.error, entry.attempts) == (PENDING, "durable", None, 0)
    assert entry.owner == owner_id() and entry.created == entry.updated == clock.now

    clock.now += 5
    assert spool.record_attempt(entry_id, error="ConnectError: refused", attempts=1)
    entry = spool.get(entry_id)
    assert entry is not None
    assert (entry.state, entry.error, entry.attempts) == (PENDING, "ConnectError: refused", 1)
    assert entry.updated == entry.created + 5

    clock.now += 5
    assert spool.give_up(entry_id, error="HTTPStatusError: 503", attempts=3, reason="failed")
    entry = spool.get(entry_id)
    assert entry is not None
    assert (entry.state, entry.reason, entry.error, entry.attempts) == (
        DEAD,
        "failed",
        "HTTPStatusError: 503",
        3,
    )
    assert entry.updated == entry.created + 10

    assert spool.delivered(entry_id) is True
    assert spool.get(entry_id) is None
    # Gone: every transition says so instead of failing.
    assert spool.delivered(entry_id) is False
    assert spool.give_up(entry_id, error="x", attempts=1) is False
    assert spool.record_attempt(entry_id, error="x", attempts=1) is False
    # Ids are never reused, so a stale id cannot delete a newer row.
    assert spool.add(note()) > entry_id


def test_a_dead_letter_keeps_its_error_and_attempts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    entry = spool.get(spool.add(note(), reason="queue full", error="QueueFull: full", attempts=2))
    assert entry is not None
    assert (entry.state, entry.reason, entry.error, entry.attempts) == (
        DEAD,
        "queue full",
        "QueueFull: full",
        2,
    )
    with pytest.raises(ValueError, match="state must be 'pending' or 'dead'"):
        spool.add(note(), state="done")


def test_add_many_writes_everything_in_one_transaction_or_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    ids = spool.add_many(
        [
            note(n=1),
            SpoolItem(note(n=2), state=PENDING, reason="durable"),
            (note(n=3), {"state": PENDING, "reason": "shutdown", "owner": None, "attempts": 2}),
        ]
    )
    assert ids == sorted(ids) and len(set(ids)) == 3
    entries = spool.entries()
    assert [e.id for e in entries] == ids
    assert [(e.notification.payload["n"], e.state, e.reason) for e in entries] == [
        (1, DEAD, "failed"),
        (2, PENDING, "durable"),
        (3, PENDING, "shutdown"),
    ]
    assert [e.owner for e in entries] == [owner_id(), owner_id(), None]
    assert entries[2].attempts == 2

    with pytest.raises(TemplateError):
        spool.add_many([note(n=4), Notification("bad", "http", "e", {"x": object()})])
    assert spool.count() == 3
    assert spool.add_many([]) == []


# -- reading, filtering, purging -------------------------------------------------------------


def filled(tmp_path: Path) -> tuple[Spool, Clock, dict[str, int]]:
    clock = Clock(1000.0)
    spool = Spool(tmp_path / "spool.db", clock=clock)
    ids = {}
    for name, listener, state, created in [
        ("a", "hook", DEAD, 1000.0),
        ("b", "crm", DEAD, 1100.0),
        ("c", "hook", PENDING, 1200.0),
        ("d", "hook", DEAD, 1300.0),
    ]:
        clock.now = created
        ids[name] = spool.add(note(listener, n=ord(name)), state=state)
    clock.now = 1300.0
    return spool, clock, ids


def test_entries_filters_by_listener_state_age_ids_and_limit(tmp_path: Path) -> None:
    spool, clock, ids = filled(tmp_path)

    def names(**filters: object) -> str:
        return "".join(chr(e.notification.payload["n"]) for e in spool.entries(**filters))

    assert names() == "abcd"  # oldest first
    assert names(listener="hook") == "acd"
    assert names(listener="nobody") == ""
    assert names(state=DEAD) == "abd" and names(state=PENDING) == "c"
    assert names(listener="hook", state=DEAD) == "ad"
    assert names(older_than=150) == "ab"  # created at or before 1150
    assert names(older_than=200) == "ab" and names(older_than=201) == "a"
    assert names(older_than=0) == "abcd" and names(older_than=10_000) == ""
    assert names(ids=[ids["d"], ids["b"], 999_999]) == "bd"
    assert names(ids=[]) == ""
    assert names(limit=2) == "ab" and names(state=DEAD, limit=1) == "a" and names(limit=0) == ""
    assert names(listener="hook", state=DEAD, older_than=100, ids=[ids["a"], ids["d"]]) == "a"
    clock.now += 1000
    assert names(older_than=1050) == "abc"
    with pytest.raises(ValueError, match="state"):
        spool.entries(state="done")
    with pytest.raises(ValueError, match="older_than"):
        spool.entries(older_than=-1)
    with pytest.raises(ValueError, match="limit"):
        spool.entries(limit=-1)


def test_count(tmp_path: Path) -> None:
    spool, _, _ = filled(tmp_path)
    assert spool.count() == 4
    assert spool.count(state=DEAD) == 3 and spool.count(state=PENDING) == 1
    assert spool.count(listener="hook") == 3 and spool.count(listener="hook", state=DEAD) == 2
    assert spool.count(listener="nobody") == 0


def test_purge_deletes_dead_entries_by_default_and_honours_filters(tmp_path: Path) -> None:
    spool, _, ids = filled(tmp_path)
    assert spool.purge(listener="crm", older_than=500) == 0  # b is only 200 s old
    assert spool.purge(older_than=250) == 1  # a
    assert spool.purge(ids=[ids["c"], ids["d"]]) == 1  # d; c is pending
    assert [e.id for e in spool.entries()] == [ids["b"], ids["c"]]
    assert spool.purge(listener="crm") == 1
    assert spool.purge() == 0
    assert spool.purge(state=None) == 1  # pending too, when asked
    assert spool.count() == 0


BLOB = " (a BLOB, or text that is not UTF-8)"  # how the spool names bytes it cannot read
DAMAGE = [
    ("payload = '{not json'", "payload: Expecting property name enclosed in double quotes"),
    ("payload = '[1, 2]'", "payload: not a JSON object but list '[1, 2]'"),
    ("""payload = '{"body": {"$bytes": "!!"}}'""", "payload: a $bytes tag without valid base64"),
    ("""payload = '{"h": {"$dict": 5}}'""", "payload: a $dict tag that is not a list of"),
    ("payload = '" + "[" * 100_000 + "'", "payload: nested too deeply to read"),
    ("payload = CAST(X'FF' AS TEXT)", f"column payload holds b'\\xff'{BLOB}, not text"),
    ("payload = X'7B7D'", f"column payload holds b'{{}}'{BLOB}, not text"),  # a BLOB, even '{}'
    ("listener = X'00'", f"column listener holds b'\\x00'{BLOB}, not text"),
    ("attempts = 'many'", "column attempts holds 'many', not an integer"),
    ("created = 'yesterday'", "column created holds 'yesterday', not a Unix time"),
    ("state = 'done'", "column state holds 'done', not 'pending' or 'dead'"),
    ("notification_id = ''", "column notification_id holds '', not a notification id"),
    ("notification_id = X'01'", f"column notification_id holds b'\\x01'{BLOB}, not a"),
]


@pytest.mark.parametrize(("assignment", "problem"), DAMAGE)
def test_an_unreadable_row_is_left_out_of_entries_and_returned_by_unreadable(
    tmp_path: Path, assignment: str, problem: str
) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    good, bad, other = spool.add_many([note(n=1), note(n=2), note(n=3)])
    corrupt(path, bad, assignment)
    # The other rows read as ever, whatever the filters and the limit.
    assert [e.id for e in spool.entries()] == [good, other]
    assert [e.id for e in spool.entries(limit=2)] == [good, other]
    assert [e.id for e in spool.entries(ids=[bad, other])] == [other]
    # The damaged one is listed apart, as stored, with what is wrong with it.
    (item,) = spool.unreadable()
    assert isinstance(item, UnreadableEntry) and item.id == bad
    assert item.problem.startswith(problem), item.problem
    assert spool.unreadable(ids=[good]) == [] and spool.unreadable(limit=0) == []
    if assignment.startswith("payload = '{"):
        assert item.payload == assignment.split("'")[1]  # the stored text, untouched
    assert spool.count() == 3
    with pytest.raises(SpoolError) as info:
        spool.get(bad)
    assert f"entry {bad} cannot be read: {problem}" in str(info.value)
    assert f"unreadable(ids=[{bad}])" in str(info.value)
    readable = spool.get(good)
    assert readable is not None and readable.notification.payload == {"n": 1}
    assert spool.purge(ids=[bad], state=None) == 1  # and it can be purged
    assert spool.unreadable() == [] and spool.count() == 2


def test_claiming_orphans_sets_an_unreadable_one_aside_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    first, bad, last = spool.add_many(
        [SpoolItem(note(n=i), state=PENDING, reason="durable", owner=None) for i in range(3)]
    )
    crm = spool.add(note("crm"), state=PENDING, owner=None)  # another app's listener
    mine = spool.add(note(n=9), state=PENDING)  # this live process is delivering it
    for entry_id in (bad, crm, mine):
        corrupt(path, entry_id, "payload = '{not json'")
    # When orphans are claimed, the readable ones are taken ...
    with caplog.at_level(logging.WARNING, logger="eventisc.spool"):
        assert [e.id for e in spool.claim_orphans(["hook"])] == [first, last]
    # ... and the unreadable one is set aside: dead, never delivered, logged once.
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING and f"pending entry {bad} " in message
    assert "cannot be read: payload: Expecting property name" in message
    assert f"eventisc spool show CONFIG {bad}" in message
    assert f"eventisc spool purge CONFIG --id {bad}" in message
    (item,) = spool.unreadable(state=DEAD)
    assert (item.id, item.reason, item.owner) == (bad, UNREADABLE, None)
    assert item.error.startswith("payload: Expecting property name")
    # Rows the claim did not take are not its business: another listener's, a live owner's.
    assert [i.id for i in spool.unreadable(state=PENDING)] == [crm, mine]
    caplog.clear()
    assert spool.release([first, last]) == 2
    assert [e.id for e in Spool(path).claim_orphans(["hook"])] == [first, last]
    assert caplog.records == []


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("owner = X'01'", f"column owner holds b'\\x01'{BLOB}, not text or NULL"),
        ("updated = 'soon'", "column updated holds 'soon', not a Unix time"),
    ],
)
def test_a_pending_row_whose_owner_or_time_is_damaged_is_set_aside(
    tmp_path: Path, assignment: str, problem: str
) -> None:
    # Nobody can tell whether such a row's owner lives, or when its lease ends: it counts as an
    # orphan (a live owner that still delivers it from memory deletes it by id all the same).
    path = tmp_path / "spool.db"
    spool = Spool(path, lease=600)
    bad, good = (spool.add(note(n=i), state=PENDING, owner="elsewhere:1:1") for i in range(2))
    corrupt(path, bad, assignment)
    assert spool.claim_orphans() == []  # the readable one waits for its lease
    with sqlite3.connect(path) as raw:
        row = raw.execute("SELECT state, reason, error FROM entries WHERE id = ?", (bad,))
        assert row.fetchone() == (DEAD, UNREADABLE, problem)
    raw.close()
    assert spool.get(good) is not None


def test_claim_dead_hands_out_each_dead_entry_once_as_pending(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    path = tmp_path / "spool.db"
    spool = Spool(path, clock=clock)
    old, crm, new = spool.add_many(
        [note(n=1), note("crm", n=2), (note(n=3), {"error": "503", "attempts": 2})]
    )
    clock.now += 100
    recent = spool.add(note(n=4))
    pending = spool.add(note(n=5), state=PENDING, owner=None)
    bad = spool.add(note(n=6))
    corrupt(path, bad, "payload = '{not json'")
    # Filters choose what to take; what is taken is pending, owned by this process.
    assert spool.claim_dead(["nobody"]) == []
    assert [e.id for e in spool.claim_dead(["hook"], older_than=50, ids=[old, crm])] == [old]
    clock.now += 1
    taken = spool.claim_dead()
    assert [e.id for e in taken] == [crm, new, recent]
    assert all(e.state == PENDING and e.owner == owner_id() for e in taken)
    assert (taken[1].error, taken[1].attempts, taken[1].reason) == ("503", 2, "failed")
    assert all(spool.get(e.id) == e for e in taken)  # the stored row is what was returned
    # Nobody takes them again: not as dead, not as orphans of this live process.
    assert spool.claim_dead() == [] and Spool(path).claim_dead() == []
    assert [e.id for e in spool.claim_orphans()] == [pending]
    # give_up makes one dead again, to be claimed by the next replay.
    assert spool.give_up(new, error="504", attempts=3)
    assert [e.id for e in spool.claim_dead()] == [new]
    assert [i.id for i in spool.unreadable(state=DEAD)] == [bad]  # left as it was


# -- ages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1.5h", 5400),
        ("2w", 1209600),
        ("30", 30),
        ("2.5", 2.5),
        (".5m", 30),
        (" 10 M ", 600),
        ("0", 0),
    ],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", " ", "abc", "10x", "-5", "1h30m", "h", "1e3", "nan", "inf"])
def test_parse_age_rejects_what_it_cannot_read_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="for example 90s, 10m, 1.5h, 7d") as info:
        parse_age(text)
    assert repr(text) in str(info.value)


# -- threads and processes ------------------------------------------------------------------


def test_eight_threads_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    per_thread = 150
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(9)

    def add(worker: int) -> None:
        try:
            start.wait(5)
            ids = []
            for i in range(per_thread):
                state = PENDING if i % 2 else DEAD
                entry_id = spool.add(note(f"l{worker}", n=i, raw=b"%d" % i), state=state)
                if i % 3 == 0:
                    spool.record_attempt(entry_id, error="e", attempts=1)
                ids.append(entry_id)
            results[worker] = ids
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    start.wait(5)
    while any(t.is_alive() for t in threads):
        spool.entries(limit=50)  # reading meanwhile
        spool.count()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [entry_id for ids in results.values() for entry_id in ids]
    assert len(set(every)) == 8 * per_thread == spool.count()
    for worker, ids in results.items():
        entries = spool.entries(listener=f"l{worker}")
        assert [e.id for e in entries] == ids
        assert [e.notification.payload["raw"] for e in entries] == [
            b"%d" % i for i in range(per_thread)
        ]


def test_two_spool_objects_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first, second = Spool(path), Spool(path)
    a = first.add(note(n=1), state=PENDING)
    b = second.add(note(n=2))
    assert [e.id for e in first.entries()] == [e.id for e in second.entries()] == [a, b]
    assert second.delivered(a) and first.get(a) is None
    assert first.give_up(b, error="x", attempts=1, reason="failed")
    entry = second.get(b)
    assert entry is not None and entry.error == "x"
    assert first.purge() == 1 and second.count() == 0


@posix_only
def test_several_processes_write_to_one_spool_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    Spool(path).close()
    code = """
        from eventisc.notification import Notification
        from eventisc.spool import Spool
        spool = Spool(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(200):
            spool.add(Notification(sys.argv[2], "http", "e", {"i": i}), state="pending")
        print(spool.count(listener=sys.argv[2]), flush=True)
    """
    children = [start_child(code, path, f"p{i}") for i in range(3)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        spool = Spool(path)
        for i in range(200):
            spool.add(note("parent", n=i))
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "200\n"
            assert child.wait(20) == 0
    finally:
        for child in children:
            stop(child)
    assert spool.count() == 800
    assert [spool.count(listener=f"p{i}") for i in range(3)] == [200, 200, 200]


def test_a_write_blocked_past_busy_timeout_is_a_spool_error(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, busy_timeout=0.2)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        started = time.monotonic()
        with pytest.raises(SpoolError) as info:
            spool.add(note())
        assert time.monotonic() - started >= 0.15
        assert str(path) in str(info.value) and "locked" in str(info.value)
        assert "busy_timeout=0.2s" in str(info.value)
    finally:
        raw.execute("ROLLBACK")
        raw.close()
    assert spool.get(spool.add(note())) is not None  # usable once the lock is gone


# -- orphans ------------------------------------------------------------------------------------

PENDING_CHILD = """
    from eventisc.notification import Notification
    from eventisc.spool import Spool, owner_id
    spool = Spool(sys.argv[1])
    ids = [
        spool.add(Notification("hook", "http", "e", {"i": i, "raw": b"\\xff"}), state="pending")
        for i in range(3)
    ]
    spool.add(Notification("hook", "http", "e", {}), state="dead")  # never claimed
    print(owner_id(), *ids, flush=True)
    sys.stdin.readline()
"""


def wait_until_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rpartition(b")")[2].split()[0] == b"Z":
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not become a zombie")


@posix_only
def test_the_pending_rows_of_a_killed_process_are_claimed_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.db")
    spool = Spool(path)
    mine = spool.add(note(n=99), state=PENDING, reason="durable")  # this live process's row
    child = start_child(PENDING_CHILD, path)
    try:
        assert child.stdout is not None
        child_owner, *ids = child.stdout.readline().split()
        child_ids = [int(i) for i in ids]
        assert child_owner.split(":")[-2] == str(child.pid) and child_owner != owner_id()
        # Given a live child: neither its rows nor ours are orphans.
        assert spool.claim_orphans() == []
        # When it is killed (and, on Linux, before its parent reaps it: a zombie is dead too)
        child.send_signal(signal.SIGKILL)
        if sys.platform.startswith("linux"):
            wait_until_zombie(child.pid)
        else:
            child.wait(10)
        claimed = spool.claim_orphans()
    finally:
        stop(child)
    # Then exactly its pending rows are ours now, oldest first, with their payloads intact.
    assert [e.id for e in claimed] == child_ids
    assert [e.notification.payload for e in claimed] == [{"i": i, "raw": b"\xff"} for i in range(3)]
    assert all(e.state == PENDING and e.owner == owner_id() for e in claimed)
    for entry in claimed:
        stored = spool.get(entry.id)
        assert stored is not None and stored.owner == owner_id()
        assert stored.updated == entry.updated
    assert spool.claim_orphans() == []
    assert Spool(path).claim_orphans() == []  # another spool object of this process: ours too
    mine_entry = spool.get(mine)
    assert mine_entry is not None and mine_entry.owner == owner_id()
    assert spool.count(state=DEAD) == 1


@posix_only
def test_the_rows_of_a_child_that_exits_normally_are_claimed_after_it_exits(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "spool.db")
    spool = Spool(path)
    child = start_child(PENDING_CHILD, path)
    try:
        assert child.stdout is not None and child.stdin is not None
        ids = [int(i) for i in child.stdout.readline().split()[1:]]
        assert spool.claim_orphans() == []
        child.stdin.close()  # let it finish
        assert child.wait(10) == 0
    finally:
        stop(child)
    assert [e.id for e in spool.claim_orphans()] == ids


@posix_only
@pytest.mark.parametrize(("claim", "state"), [("claim_orphans", PENDING), ("claim_dead", DEAD)])
def test_concurrent_claims_hand_each_row_to_one_process(
    tmp_path: Path, claim: str, state: str
) -> None:
    path = str(tmp_path / "spool.db")
    spool = Spool(path)
    ids = spool.add_many([SpoolItem(note(n=i), state=state, owner=None) for i in range(300)])
    code = """
        from eventisc.spool import Spool
        spool = Spool(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.readline()
        print(*[e.id for e in getattr(spool, sys.argv[2])()], flush=True)
    """
    children = [start_child(code, path, claim) for _ in range(3)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        claims = []
        for child in children:
            assert child.stdout is not None
            claims.append([int(i) for i in child.stdout.readline().split()])
            assert child.wait(20) == 0
    finally:
        for child in children:
            stop(child)
    assert sorted(i for claim in claims for i in claim) == ids  # every row, once
    for claim in claims:
        assert claim == sorted(claim)


@posix_only
def test_the_dead_entries_a_killed_process_claimed_are_taken_over_as_orphans(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "spool.db")
    spool = Spool(path)
    ids = spool.add_many([note(n=i) for i in range(3)])
    code = """
        from eventisc.spool import Spool
        print(*[e.id for e in Spool(sys.argv[1]).claim_dead()], flush=True)
        sys.stdin.readline()
    """
    # Given a replay that took the dead entries, then was killed before delivering them ...
    child = start_child(code, path)
    try:
        assert child.stdout is not None
        assert [int(i) for i in child.stdout.readline().split()] == ids
        assert spool.claim_dead() == [] and spool.claim_orphans() == []  # while it lives
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        stop(child)
    # ... they are not dead any more, and not held for ever: the next claim of orphans (a
    # replay, an app's recovery) takes them, with their payloads and attempts.
    assert spool.claim_dead() == []
    claimed = spool.claim_orphans()
    assert [e.id for e in claimed] == ids
    assert [e.notification.payload["n"] for e in claimed] == [0, 1, 2]


def test_rows_of_this_process_are_not_claimed_until_released(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    first = spool.add(note(n=1), state=PENDING)
    second = spool.add(note(n=2), state=PENDING)
    spool.add(note(n=3))  # dead
    assert spool.claim_orphans() == []
    assert spool.release([first, second, 12345]) == 2
    assert [e.owner for e in spool.entries(state=PENDING)] == [None, None]
    assert [e.id for e in spool.claim_orphans()] == [first, second]
    assert spool.claim_orphans() == []


def test_claims_are_limited_to_the_given_listeners(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    hook, crm = (spool.add(note(name), state=PENDING, owner=None) for name in ("hook", "crm"))
    assert spool.claim_orphans([]) == []
    assert [e.id for e in spool.claim_orphans(["hook", "other"])] == [hook]
    assert [e.id for e in spool.claim_orphans()] == [crm]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="start times come from /proc")
def test_a_recycled_pid_is_not_mistaken_for_its_old_process(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    host, pid, start = owner_id().rsplit(":", 2)
    assert pid == str(os.getpid()) and start.isdigit()
    # This process's pid, started at another time: the owner was an earlier process.
    old = spool.add(note(), state=PENDING, owner=f"{host}:{pid}:{int(start) - 1}")
    assert [e.id for e in spool.claim_orphans()] == [old]


def test_rows_of_another_host_wait_for_the_lease(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "spool.db"
    spool = Spool(path, lease=600, clock=clock)
    foreign = spool.add(note(), state=PENDING, owner="elsewhere:1234:5678")
    strange = spool.add(note(), state=PENDING, owner="not an owner id")
    clock.now += 599
    assert spool.claim_orphans() == []
    assert Spool(path, lease=None, clock=Clock(clock.now + 10**9)).claim_orphans() == []
    clock.now += 1
    claimed = spool.claim_orphans()
    assert [e.id for e in claimed] == [foreign, strange]
    assert all(e.updated == clock.now for e in claimed)


def test_record_attempt_renews_the_lease_of_a_pending_row(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", lease=600, clock=clock)
    entry_id = spool.add(note(), state=PENDING, owner="elsewhere:1:1")
    clock.now += 500
    spool.record_attempt(entry_id, error="timeout", attempts=1)
    clock.now += 500
    assert spool.claim_orphans() == []  # touched 500 s ago
    clock.now += 100
    assert [e.id for e in spool.claim_orphans()] == [entry_id]


# -- fork ---------------------------------------------------------------------------------------


@needs_fork
def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    before = spool.add(note(n=1))  # the connection is open when forking
    # Another thread holds the spool's lock at fork time: the child must not deadlock on it.
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with spool._lock:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert holding.wait(5)
    result = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            assert spool._db is None  # the parent's connection was dropped, not reused
            entry_id = spool.add(note("child", n=2), state=PENDING)
            result.write_text(f"{entry_id} {spool.count()} {owner_id()}")
            spool.close()
            code = 0
        finally:
            os._exit(code)
    release.set()
    holder.join()
    assert wait_for_child(pid) == 0
    child_id, child_count, child_owner = result.read_text().split()
    assert child_count == "2" and child_owner.split(":")[-2] == str(pid)
    # The parent's connection still works and sees the child's row.
    assert [e.id for e in spool.entries()] == [before, int(child_id)]
    entry = spool.get(int(child_id))
    assert entry is not None and entry.owner == child_owner
    assert spool.add(note(n=3)) > int(child_id)
    # The child is gone: its pending row is an orphan.
    assert [e.id for e in spool.claim_orphans()] == [int(child_id)]


# -- bad files ----------------------------------------------------------------------------------


def test_paths_that_cannot_hold_a_spool_raise_spool_error_with_the_path(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE users (id INTEGER)")
    for path, message in [
        (a_file / "spool.db", ""),  # its directory is a file
        (tmp_path, "unable to open"),  # a directory
        (garbage, "not a database"),
        (other, "holds something else"),
    ]:
        with pytest.raises(SpoolError) as info:
            Spool(path)
        assert str(path) in str(info.value) and message in str(info.value)


def test_an_orphan_whose_notification_id_is_damaged_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    bad, good = (spool.add(note(n=i), state=PENDING, owner=None) for i in range(2))
    corrupt(path, bad, "notification_id = ''")
    assert [e.id for e in spool.claim_orphans()] == [good]
    (item,) = spool.unreadable(state=DEAD)
    assert (item.id, item.reason, item.notification_id) == (bad, UNREADABLE, "")
    assert item.error == "column notification_id holds '', not a notification id (text)"


#: The layout of a version-1 spool file, as eventisc wrote it before it stored notification ids.
V1_DDL = (
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
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
#: A row as version 1 wrote it.
V1_INSERT = (
    "INSERT INTO entries (listener, kind, event_name, payload, state, reason, error, attempts, "
    "owner, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
NOTIFICATION_ID = re.compile("[0-9a-f]{32}")


def v1_spool(path: Path, rows: list[tuple[Any, ...]]) -> None:
    with sqlite3.connect(path) as raw:
        for statement in V1_DDL:
            raw.execute(statement)
        raw.executemany(V1_INSERT, rows)
        raw.execute("PRAGMA user_version = 1")
    raw.close()


def test_a_version_1_file_is_upgraded_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a file an earlier eventisc wrote: two dead rows and a pending one; the last row
    # written was deleted (its entry id must never be given again)
    path = tmp_path / "spool.db"
    row = ("hook", "http", "user_created", '{"n":%d}', DEAD, "failed", "503", 2, None, 10.0, 11.0)
    rows = [(*row[:3], row[3] % n, *row[4:]) for n in range(4)]
    rows[1] = (*rows[1][:4], PENDING, "durable", None, 0, None, 10.0, 12.0)
    v1_spool(path, rows)
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM entries WHERE id = 4")
    raw.close()
    # When this version opens it
    with caplog.at_level(logging.INFO, logger="eventisc.spool"):
        spool = Spool(path)
    assert "upgraded from schema version 1 to 2" in caplog.text
    # Then every row is there as it was, with a notification id of its own
    entries = spool.entries()
    assert [(e.id, e.notification.payload, e.state) for e in entries] == [
        (1, {"n": 0}, DEAD),
        (2, {"n": 1}, PENDING),
        (3, {"n": 2}, DEAD),
    ]
    assert (entries[0].error, entries[0].attempts, entries[0].created) == ("503", 2, 10.0)
    ids = [e.notification.id for e in entries]
    assert all(NOTIFICATION_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3
    # ... kept: read again, claimed, or opened by another process, a row's id stays the same
    # (a replay sends the id the row has from now on)
    spool.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    raw.close()
    caplog.clear()
    again = Spool(path)
    assert [e.notification.id for e in again.entries()] == ids
    assert [e.notification.id for e in again.claim_dead()] == [ids[0], ids[2]]
    assert "upgraded" not in caplog.text
    # New rows keep their notification's id; entry ids are still never reused
    fresh = note(n=9)
    entry_id = again.add(fresh)
    assert entry_id == 5
    stored = again.get(entry_id)
    assert stored is not None and stored.notification.id == fresh.id
    # A process of the earlier version still running writes rows without an id: each gets one
    with sqlite3.connect(path) as raw:
        raw.executemany(V1_INSERT, [rows[0], rows[0]])
    raw.close()
    late = [e.notification.id for e in again.entries(ids=[6, 7])]
    assert all(NOTIFICATION_ID.fullmatch(i) for i in late) and len(set(late + ids)) == 5
    again.close()


def test_a_version_1_file_shared_by_processes_is_upgraded_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    v1_spool(path, [("hook", "http", "e", "{}", DEAD, "failed", None, 1, None, 1.0, 1.0)])
    spools = [Spool(path) for _ in range(2)]  # the second finds it upgraded already
    assert spools[0].entries() == spools[1].entries()
    for spool in spools:
        spool.close()


def test_a_spool_written_by_a_newer_eventisc_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    Spool(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(SpoolError, match="newer eventisc .schema version 99"):
        Spool(path)


def test_a_place_nobody_may_write_raises_spool_error_with_the_path() -> None:
    # /proc refuses new files even to root, so this holds whoever runs the tests.
    for path in ("/proc/eventisc-spool.db", "/proc/self/eventisc/spool.db"):
        with pytest.raises(SpoolError, match=path):
            Spool(path)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        Spool("unused.db", busy_timeout=-1)
    with pytest.raises(ValueError, match="lease"):
        Spool("unused.db", lease=-1)
