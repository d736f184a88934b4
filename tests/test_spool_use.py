"""The spool in use against a real HTTP receiver: the `eventisc spool` commands, run as users
run them, and an app's recovery at start. Damaged rows are damaged with sqlite3 directly."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import eventisc
from eventisc.spool import DEAD, PENDING, UNREADABLE, Spool, SpoolItem

from .receiver import Receiver, Response
from .support import corrupt, run_cli


def write_config(tmp_path: Path, url: str, **top: Any) -> tuple[str, Path]:
    spool = tmp_path / "spool.db"
    config = {
        "spool": {"path": str(spool)},
        "listeners": [
            {"kind": "http", "name": "hook", "event_name": "e", "url": url, "data": "{event_data}"}
        ],
        **top,
    }
    path = tmp_path / "events.json"
    path.write_text(json.dumps(config))
    return str(path), spool


def spooled(config: str, count: int, **keywords: Any) -> list[int]:
    """Store ``count`` notifications of the config's listener, {"i": 0}, {"i": 1}, ...; their
    ids (dead letters unless ``keywords`` say otherwise)."""
    with eventisc.create_app(config_file=config, delivery="sync", durable=False) as app:
        (listener,) = app.listeners
        spool = app._deliverer.spool
        assert spool is not None
        return spool.add_many(
            SpoolItem(listener.render("e", {"i": i}), **keywords) for i in range(count)
        )


posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")

REPLAY = [sys.executable, "-m", "eventisc", "spool", "replay"]


def start_replay(config: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*REPLAY, config], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def sent(receiver: Receiver) -> list[int]:
    return sorted(request.json["i"] for request in receiver.requests)


# -- the notification id -----------------------------------------------------------------------


def test_show_prints_the_notification_id_and_a_replay_sends_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url)
    (entry_id,) = spooled(config, 1)
    entry = Spool(path).get(entry_id)
    assert entry is not None and re.fullmatch("[0-9a-f]{32}", entry.notification.id)
    shown = run_cli("spool", "show", config, str(entry_id))
    assert shown.returncode == 0, shown.stderr
    item = json.loads(shown.stdout)
    assert item["id"] == entry_id
    assert item["notification"] == {
        "id": entry.notification.id,
        "listener": "hook",
        "kind": "http",
        "event_name": "e",
        "payload": entry.notification.payload,
    }
    receiver.script.append(Response(503))
    for _ in range(2):  # the first replay fails and keeps it, the second delivers it
        run_cli("spool", "replay", config)
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [entry.notification.id] * 2
    assert Spool(path).count() == 0


# -- unreadable rows ----------------------------------------------------------------------------


def test_an_unreadable_entry_is_listed_shown_kept_by_replay_and_purged(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url)
    first, bad, last = spooled(config, 3)
    corrupt(path, bad, "payload = '{not json'")

    listed = run_cli("spool", "list", config)
    assert listed.returncode == 0, listed.stderr
    assert "3 notification(s), 1 unreadable" in listed.stdout
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:-1]}
    assert list(rows) == [str(first), str(bad), str(last)]
    assert "dead" in rows[str(bad)]
    assert "UNREADABLE: payload: Expecting property name" in rows[str(bad)]
    assert f"eventisc spool purge {config} --id ID" in listed.stdout.splitlines()[-1]

    shown = run_cli("spool", "show", config, str(bad))
    assert shown.returncode == 0, shown.stderr
    item = json.loads(shown.stdout)
    assert (item["id"], item["state"], item["reason"]) == (bad, DEAD, "failed")
    assert item["unreadable"].startswith("payload: Expecting property name")
    assert re.fullmatch("[0-9a-f]{32}", item["stored"].pop("id"))  # the notification's id
    assert item["stored"] == {
        "listener": "hook",
        "kind": "http",
        "event_name": "e",
        "payload": "{not json",
    }

    # A replay delivers the others and keeps the unreadable one, saying how to deal with it.
    replay = run_cli("spool", "replay", config)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "replayed 3: 2 delivered, 1 kept (1 unreadable)" in replay.stdout
    assert f"{bad}: UNREADABLE, kept: payload: Expecting property name" in replay.stdout
    assert f"`eventisc spool purge {config} --id {bad}` deletes it" in replay.stdout
    assert sent(receiver) == [0, 2]
    again = run_cli("spool", "replay", config)
    assert again.returncode == 1 and "replayed 1: 0 delivered, 1 kept" in again.stdout
    assert sent(receiver) == [0, 2]

    purged = run_cli("spool", "purge", config, "--id", str(bad))
    assert purged.returncode == 0 and "removed 1 notification(s)" in purged.stdout
    assert Spool(path).count() == 0
    assert run_cli("spool", "replay", config).returncode == 0


def test_recovery_delivers_the_readable_orphans_and_sets_the_unreadable_ones_aside(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Given pending notifications left by a process that is gone, two of them damaged ...
    config, path = write_config(tmp_path, receiver.url, delivery="background", durable=True)
    ids = spooled(config, 5, state=PENDING, reason="durable", owner=None)
    corrupt(path, ids[1], "payload = '{not json'")
    corrupt(path, ids[3], """payload = '{"body": {"$bytes": "!!"}}'""")
    # When an app starts with this spool ...
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        with eventisc.create_app(config_file=config) as app:
            receiver.wait_for(3)
            assert app.flush(10)
    # ... it delivers the readable ones,
    assert sent(receiver) == [0, 2, 4]
    # sets the damaged ones aside (dead: no process holds them, no start tries them again),
    spool = Spool(path)
    assert spool.entries() == []
    aside = spool.unreadable()
    assert [(i.id, i.state, i.reason) for i in aside] == [
        (ids[1], DEAD, UNREADABLE),
        (ids[3], DEAD, UNREADABLE),
    ]
    assert aside[1].error.startswith("payload: a $bytes tag without valid base64")
    # and says so once for each, with how to look at it and delete it.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    for entry_id, message in zip((ids[1], ids[3]), warnings, strict=True):
        assert f"pending entry {entry_id} (listener 'hook', event 'e') cannot be read" in message
        assert f"eventisc spool purge CONFIG --id {entry_id}" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        with eventisc.create_app(config_file=config) as app:
            assert app.flush(10)
    assert caplog.records == [] and len(receiver.requests) == 3


# -- claims: concurrent replays and apps --------------------------------------------------------


def test_two_replays_at_once_deliver_each_dead_entry_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.default = Response(delay=0.01)  # a replay takes a second or more: the two overlap
    config, path = write_config(tmp_path, receiver.url)
    spooled(config, 100)
    replays = [start_replay(config) for _ in range(2)]
    outputs = [replay.communicate(timeout=120) for replay in replays]
    assert [replay.returncode for replay in replays] == [0, 0], outputs
    assert len(receiver.requests) == 100
    assert sent(receiver) == list(range(100))
    delivered = [re.search(r"(\d+) delivered, 0 kept", out) for out, _ in outputs]
    assert sum(int(match.group(1)) for match in delivered if match) == 100, outputs
    assert Spool(path).count() == 0


def test_a_killed_replay_leaves_its_entries_to_the_next_one(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url)
    spooled(config, 5)
    receiver.respond(Response(delay=5))
    # Given a replay killed while it delivers the first of its entries ...
    replay = start_replay(config)
    try:
        receiver.wait_for(1)
    finally:
        replay.kill()
        replay.communicate(timeout=10)
    assert Spool(path).count(state=PENDING) == 5  # taken by a process that is gone
    # ... the next replay takes them over and delivers them all.
    again = run_cli("spool", "replay", config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "replayed 5: 5 delivered, 0 kept" in again.stdout
    assert Spool(path).count() == 0
    # The one in flight when the first replay was killed arrived twice: at least once.
    assert sent(receiver) == [0, 0, 1, 2, 3, 4]


@posix_only
def test_a_replay_stopped_by_ctrl_c_gives_back_what_it_took(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url)
    ids = spooled(config, 3)
    receiver.respond(Response(delay=5))
    replay = start_replay(config)
    try:
        receiver.wait_for(1)
        replay.send_signal(signal.SIGINT)
        replay.communicate(timeout=10)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.communicate(timeout=10)
    assert replay.returncode != 0
    # Dead again as they were (the interrupted one included: it may have arrived, or not).
    entries = Spool(path).entries()
    assert [(e.id, e.state, e.reason, e.attempts) for e in entries] == [
        (entry_id, DEAD, "failed", 0) for entry_id in ids
    ]


def test_a_replay_leaves_alone_what_a_live_app_is_delivering(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url, delivery="background", durable=True)
    receiver.respond(Response(delay=2))
    with eventisc.create_app(config_file=config) as app:
        app.trigger("e", {"i": 0})
        receiver.wait_for(1)  # in flight, its pending row owned by this live process
        replay = run_cli("spool", "replay", config)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replayed 0: 0 delivered, 0 kept" in replay.stdout
        assert app.flush(10)
    assert sent(receiver) == [0]
    assert Spool(path).count() == 0


def test_an_app_starting_during_a_replay_leaves_the_replayed_entries_alone(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, path = write_config(tmp_path, receiver.url, delivery="background", durable=True)
    spooled(config, 3)
    receiver.respond(Response(delay=2))
    replay = start_replay(config)
    try:
        receiver.wait_for(1)
        # While the replay holds the entries it took (pending now, owned by the replay), an
        # app starts and recovers what it finds pending and orphaned: none of them.
        with eventisc.create_app(config_file=config) as app:
            out, err = replay.communicate(timeout=60)
            assert app.flush(10)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.communicate(timeout=10)
    assert replay.returncode == 0, out + err
    assert "replayed 3: 3 delivered, 0 kept" in out
    assert sent(receiver) == [0, 1, 2]
    assert Spool(path).count() == 0


# -- output closed early -------------------------------------------------------------------------


@posix_only
def test_a_listing_cut_short_by_a_closed_pipe_ends_quietly(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Given more entries than a pipe holds (`eventisc spool list CONFIG | head -2`),
    config, _ = write_config(tmp_path, receiver.url)
    spooled(config, 2000, error="x" * 100)
    command = [sys.executable, "-m", "eventisc", "spool", "list", config]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as listing:
        assert listing.stdout is not None and listing.stderr is not None
        # when the reader stops after two lines,
        head = [listing.stdout.readline() for _ in range(2)]
        listing.stdout.close()
        errors = listing.stderr.read().decode()
        status = listing.wait(30)
    # the command stops without a traceback, as other commands stopped by a pipe do.
    assert head[0].startswith(str(tmp_path).encode()) and b"2000 notification(s)" in head[0]
    assert errors == ""
    assert status == 141
