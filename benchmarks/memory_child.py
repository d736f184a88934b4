"""Fresh processes whose memory the memory workload reads (their peak RSS is theirs alone).

    python -m benchmarks.memory_child listeners N
    python -m benchmarks.memory_child spool --events N --queue-size Q --port P

Each prints one JSON line. ``listeners`` builds an app of N http listeners (five templated
fields each; half exact names, half regexes). ``spool`` triggers N events in background mode at
an HTTP receiver that refuses connections (``--port`` where nothing listens), with a spool,
sampling RSS and the dispatcher's queue while it goes (for at most ``--max-seconds``), then
closes the app.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from .support import rss_kb


def listeners(n: int) -> dict[str, Any]:
    import requests  # noqa: F401  (the http kind's driver, loaded before the baseline)

    import eventisc
    import eventisc.listeners.http  # noqa: F401

    from .workloads.micro import TEMPLATES

    before = rss_kb()
    config = []
    for i in range(n):
        listener: dict[str, Any] = {
            "kind": "http",
            "url": "http://127.0.0.1:9/x",
            "data": dict(TEMPLATES),
        }
        if i % 2 == 0:
            listener["event_name"] = f"svc.e{i}"
        else:
            listener["event_name_regex"] = f"svc[.]r{i}[.]"
        config.append(listener)
    app = eventisc.create_app(listeners=config)
    return {
        "baseline_kb": before,
        "peak_kb": rss_kb("VmHWM"),
        "rss_kb": rss_kb(),
        "listeners": len(app.listeners),
    }


def spool(events: int, queue_size: int, port: int, max_seconds: float) -> dict[str, Any]:
    import eventisc

    from .workloads.micro import EVENT_DATA, EVENT_NAME, TEMPLATES

    workdir = tempfile.mkdtemp(prefix="eventisc-bench-spool-")
    app = eventisc.create_app(
        listeners=[
            {
                "kind": "http",
                "event_name": EVENT_NAME,
                "url": f"http://127.0.0.1:{port}/x",
                "data": TEMPLATES,
                "timeout": 2,
            }
        ],
        delivery="background",
        dispatcher={"queue_size": queue_size},
        spool={"path": os.path.join(workdir, "spool.db")},
    )
    dispatcher = app._deliverer.dispatcher  # the queue and retry schedule, for the samples
    samples: list[dict[str, Any]] = []
    triggered = [0]
    stop = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        stats = dispatcher.stats() if dispatcher is not None else {}
        samples.append(
            {
                "t": round(time.monotonic() - start, 2),
                "triggered": triggered[0],
                "rss_kb": rss_kb(),
                "queued": stats.get("queued"),
                "retrying": stats.get("scheduled_retries"),
            }
        )

    def sampler() -> None:
        while not stop.wait(0.25):
            sample()

    # Quiet: every refused delivery would log an ERROR with its traceback.
    import logging

    logging.getLogger("eventisc").disabled = True
    baseline = rss_kb()
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    accepted = 0
    deadline = start + max_seconds
    for i in range(events):
        accepted += app.trigger(EVENT_NAME, EVENT_DATA)
        triggered[0] = i + 1
        if i % 100 == 0 and time.monotonic() > deadline:
            break  # triggering has slowed to a crawl: report it rather than time out
    trigger_seconds = time.monotonic() - start
    time.sleep(2)  # the retries go on: does memory?
    stop.set()
    thread.join()
    sample()
    app.close(timeout=1)
    counts: dict[str, int] = {}
    spooled = app._deliverer.spool
    if spooled is not None:
        import sqlite3

        with sqlite3.connect(spooled.path) as db:
            for state, count in db.execute("SELECT state, COUNT(*) FROM entries GROUP BY state"):
                counts[state] = count
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "events": events,
        "triggered": triggered[0],
        "queue_size": queue_size,
        "accepted": accepted,
        "baseline_kb": baseline,
        "peak_kb": rss_kb("VmHWM"),
        "samples": samples,
        "trigger_seconds": round(trigger_seconds, 2),
        "spool": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("listeners")
    p.add_argument("n", type=int)
    p = sub.add_parser("spool")
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--queue-size", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=300, help="stop triggering after this")
    args = parser.parse_args()
    if args.what == "listeners":
        result = listeners(args.n)
    else:
        result = spool(args.events, args.queue_size, args.port, args.max_seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
