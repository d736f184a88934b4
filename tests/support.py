"""Small helpers shared by the tests (the services and faults are in conftest.py, faults.py,
amqp.py, receiver.py and celery_worker.py).

- config mappings and failures: :func:`http`, :func:`failure`;
- the command line as users run it: :func:`run_cli`;
- waiting: :func:`wait_for` (a condition), :func:`wait_for_child` (a forked child's exit);
- forking: :func:`in_child` runs a function in a forked child, bounded by a timeout;
- values: :class:`Clock` (a settable clock), :class:`User` (an object, not JSON);
- the spool's database: :func:`corrupt` damages a row behind the spool's back.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from eventisc import App, TriggerError

__all__ = [
    "Clock",
    "User",
    "corrupt",
    "failure",
    "http",
    "in_child",
    "run_cli",
    "wait_for",
    "wait_for_child",
]


def http(url: str, event_name: str = "e", **options: Any) -> dict[str, Any]:
    """The config mapping of an http listener."""
    return {"kind": "http", "event_name": event_name, "url": url, **options}


def failure(app: App, event_name: str, data: Any = None) -> BaseException:
    """Trigger with raise_errors on and return the single failure's exception."""
    app.raise_errors = True
    with pytest.raises(TriggerError) as info:
        app.trigger(event_name, data)
    assert len(info.value.failures) == 1
    return info.value.failures[0][1]


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m eventisc ARGS``, as users run it, without the caller's ``EVENTISC_*``
    variables (plus ``env``); its output as text."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTISC_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "eventisc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def wait_for_child(pid: int, timeout: float = 10) -> int:
    """The exit code of forked child ``pid``; kill it and fail if it hangs (a deadlock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} hung")


#: What a child reports at most (less than a pipe's buffer: it never waits for the parent).
_REPORT_BYTES = 60_000


def in_child(fn: Callable[[], object], timeout: float = 20) -> tuple[int, str]:
    """Fork, call ``fn()`` in the child, and return the child's exit code and report: 0 and
    ``str(fn())``, or 1 and the traceback of what it raised.

    The child never returns into pytest (it leaves with ``os._exit``) and is killed by
    SIGALRM after ``timeout`` seconds; the parent kills it and fails if it has not exited a
    little later: a hang or a deadlock fails the test instead of blocking it.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(math.ceil(timeout))
            try:
                report, code = str(fn()), 0
            except BaseException:
                report = traceback.format_exc()
            os.write(write_end, report.encode(errors="replace")[:_REPORT_BYTES])
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        code = wait_for_child(pid, timeout + 5)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    return code, b"".join(chunks).decode(errors="replace")


class Clock:
    """A settable clock: ``clock()`` is ``clock.now``, which a test moves forward."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class User:
    """An object in event data: templates read its attributes, JSON cannot encode it."""

    def __init__(self, id: int, email: str):
        self.id = id
        self.email = email


def corrupt(path: str | Path, entry_id: int, assignment: str) -> None:
    """Damage a spool row behind the spool's back, as a disk fault or a hand edit would:
    ``UPDATE entries SET <assignment> WHERE id = <entry_id>``."""
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA ignore_check_constraints = ON")  # for a state no spool writes
        raw.execute(f"UPDATE entries SET {assignment} WHERE id = ?", (entry_id,))
    raw.close()
