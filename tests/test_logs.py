"""What eventisc logs about final failures, as a user's log handler sees it: one line per
notification given up on, saying where it went, with a traceback only when it helps."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventisc
from eventisc.spool import Spool

from .faults import dead_url
from .outbox_support import hook, outbox_app, stored, write
from .receiver import Receiver, Response

FAILURES = 20


@pytest.fixture
def stderr_log() -> Iterator[io.StringIO]:
    """What a plain handler on the ``eventisc`` logger writes, at WARNING and above."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("eventisc")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def refused_app(**options: Any) -> eventisc.App:
    """An app whose one listener connects to a port where nothing listens (refused at once),
    with two attempts per notification."""
    listener = {"kind": "http", "name": "crm-webhook", "event_name": "e", "url": dead_url()}
    retry = {"max_attempts": 2, "backoff_factor": 0.001, "max_backoff": 0.001, "jitter": 0}
    return eventisc.create_app(listeners=[listener], retry=retry, **options)


def test_each_failure_kept_in_the_spool_is_one_line_naming_its_entry(
    tmp_path: Path, stderr_log: io.StringIO
) -> None:
    # Given a listener whose receiver refuses connections, and a spool,
    with refused_app(spool=str(tmp_path / "spool.db")) as app:
        # when 20 events fail,
        for i in range(FAILURES):
            assert app.trigger("e", {"i": i}) == 0
    # then the log has one line per failure, no traceback,
    lines = stderr_log.getvalue().splitlines()
    assert len(lines) == FAILURES, "\n".join(lines)
    assert "Traceback" not in stderr_log.getvalue()
    # each a warning naming the spool entry that keeps the notification.
    ids = sorted(entry.id for entry in Spool(tmp_path / "spool.db").entries(state="dead"))
    assert len(ids) == FAILURES
    logged = []
    for line in lines:
        match = re.fullmatch(
            r"WARNING listener 'crm-webhook' failed for event 'e' after 2 attempts: "
            r"ConnectError: .*; dead in the spool as #(\d+)",
            line,
        )
        assert match, line
        logged.append(int(match[1]))
    assert sorted(logged) == ids


def test_without_a_spool_each_failure_is_one_error_line_saying_dropped(
    stderr_log: io.StringIO,
) -> None:
    with refused_app() as app:
        for i in range(FAILURES):
            assert app.trigger("e", {"i": i}) == 0
    lines = stderr_log.getvalue().splitlines()
    assert len(lines) == FAILURES, "\n".join(lines)
    for line in lines:
        assert line.startswith("ERROR listener 'crm-webhook' failed for event 'e' after 2 "), line
        assert line.endswith("; dropped"), line
        assert "listener 'crm-webhook': " not in line  # named once, at the start


def test_a_known_failure_has_its_traceback_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with refused_app() as app:
        with caplog.at_level(logging.WARNING, logger="eventisc"):
            app.trigger("e")
        with caplog.at_level(logging.DEBUG, logger="eventisc"):
            app.trigger("e")
    first, second = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert first.exc_info is None
    assert second.exc_info is not None and isinstance(second.exc_info[1], eventisc.ConnectError)


class Broken(eventisc.Listener):
    """A listener with a bug: its delivery raises what no delivery error stands for."""

    kind = "buggy"

    def deliver(self, notification: eventisc.Notification) -> Any:
        return {}["missing"]


def test_an_unexpected_error_keeps_its_traceback(stderr_log: io.StringIO) -> None:
    with eventisc.create_app(listeners=[Broken("e", name="broken")]) as app:
        assert app.trigger("e") == 0
    text = stderr_log.getvalue()
    assert text.startswith("ERROR listener 'broken' failed for event 'e': KeyError: 'missing'")
    assert "Traceback" in text and text.count("ERROR") == 1


def test_a_row_a_relay_gives_up_on_is_one_line_naming_the_row(
    receiver: Receiver, postgres_url: str, outbox_table: str, stderr_log: io.StringIO
) -> None:
    app = outbox_app(postgres_url, outbox_table, hook(receiver))
    receiver.respond(Response(404))  # refused: not retried
    write(postgres_url, app, [1])
    app.run_relay(once=True, install_signals=False)
    (row,) = stored(postgres_url, outbox_table)
    assert row["state"] == "dead"
    (line,) = stderr_log.getvalue().splitlines()
    assert line.startswith("WARNING listener 'hook' failed for event 'e': HTTPStatusError: ")
    assert line.endswith(f"; dead in the outbox as row {row['seq']}")
