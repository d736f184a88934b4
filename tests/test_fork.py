"""Fork safety: a forked child starts empty, and the parent's work stays the parent's.

The scenarios run in a fresh interpreter (``python -c``) that forks, so the child exits the way
a real worker process does: through ``sys.exit`` and the interpreter's exit handlers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import eventisc
from eventisc._fork import on_fork, register

from .receiver import Receiver, Response
from .support import in_child

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import eventisc
    from eventisc import report

    url, spool, out = sys.argv[1:4]
    app = eventisc.create_app(listeners=[
        {"kind": "http", "event_name": "e", "url": url, "data": {"n": "{event_data['n']}"}},
    ], delivery="background", spool={"path": spool},
       dispatcher={"min_workers": 1, "max_workers": 1})
    for n in range(40):
        app.trigger("e", {"n": n})
    time.sleep(0.2)  # the parent's worker is busy: most notifications are still queued

    # Locks another thread holds while the process forks: in the child, nobody releases them.
    held = threading.Event()
    def hold():
        with report._finished, app._deliverer.dispatcher._lock:
            held.set()
            time.sleep(1.0)
    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        started = time.monotonic()
        stats = app.stats()["dispatcher"]
        flushed = app.flush(timeout=5)
        flush_took = time.monotonic() - started
        # A sync delivery finishing in the child takes the condition the parent's thread held.
        child = {"kind": "http", "event_name": "c", "url": url.replace("/hook", "/child")}
        child_app = eventisc.create_app(listeners=[child])
        report_ok = child_app.dispatch("c", {}).wait(5)
        with open(out, "w") as f:
            json.dump({"pending": stats["pending"], "queued": stats["queued"],
                       "flushed": flushed, "flush_took": flush_took, "report": report_ok}, f)
        sys.exit(0)  # the exit handlers close the app: it must find nothing to keep
    started = time.monotonic()
    os.waitpid(pid, 0)
    child_exit = time.monotonic() - started
    assert app.flush(30), "the parent did not deliver its own notifications"
    with open(out + ".parent", "w") as f:
        json.dump({"child_exit": child_exit}, f)
    """
)


def test_a_forked_child_starts_empty_and_leaves_the_parents_work_alone(tmp_path):
    # Given a parent with 40 notifications queued for a slow receiver and a spool...
    receiver = Receiver()
    receiver.default = Response(delay=0.05)
    spool = tmp_path / "spool.sqlite3"
    out = tmp_path / "child.json"
    try:
        # ...when it forks while another thread holds the dispatcher's and the deliveries'
        # locks, and the child exits without ever triggering,
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, receiver.url + "/hook", str(spool), str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        child = json.loads(out.read_text())
        parent = json.loads((tmp_path / "child.json.parent").read_text())
        # then the child saw an empty queue, did not wait for the parent's work, did not
        # deadlock on a lock held at fork time, and exited at once;
        assert child["pending"] == 0 and child["queued"] == 0
        assert child["flushed"] is True and child["flush_took"] < 1.0
        assert child["report"] is True
        assert parent["child_exit"] < 5.0  # shutdown_timeout is 10 s
        assert "still queued at shutdown" not in run.stderr
        # and each of the parent's notifications arrived exactly once (1 more: the child's own).
        hooks = [r for r in receiver.requests if r.path == "/hook"]
        assert sorted(r.json["n"] for r in hooks) == list(range(40))
        # Nothing was left in the spool for a later app to deliver again.
        with eventisc.create_app(spool={"path": str(spool)}) as app:
            assert app._deliverer.spool is not None
            assert app._deliverer.spool.count() == 0
    finally:
        receiver.close()


class _Counter:
    def __init__(self) -> None:
        self.resets = 0

    def _after_fork(self) -> None:
        self.resets += 1


def test_registered_objects_and_callbacks_are_reset_in_the_child_only():
    import os

    counter = register(_Counter())
    calls: list[int] = []
    on_fork(lambda: calls.append(os.getpid()))
    code, report = in_child(lambda: json.dumps([counter.resets, len(calls)]))
    assert code == 0, report
    assert json.loads(report) == [1, 1]
    assert counter.resets == 0 and calls == []  # the parent is untouched
