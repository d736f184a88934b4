"""Memory: peak RSS of 1,000 listeners, and of a background run against a dead receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ..harness import Check, Context, Row, Skip, Table
from ..support import REPO, closed_port

__all__ = ["memory"]


def _child(*args: str, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_child", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory_child {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


SPOOL_ANALYSIS = (
    "Pending deliveries, queued or waiting for a retry, count against `queue_size` together "
    "(the `queued` and `retrying` columns add up to at most `queue_size`), so what grows is "
    "not the dispatcher. Growth here has come from failed deliveries' errors: each keeps the "
    "frames it was raised through, and through reference cycles (urllib3 keeps its own error "
    "in a local of a frame of its traceback; the worker's frame held the delivery) a burst "
    "of failures lingered until a full garbage collection, raising RSS in steps that the "
    "allocator did not give back. Deliveries now keep their errors without cycles (the "
    "frames' locals are cleared once the outcome is recorded). A miss of a few percent can "
    "also come from SQLite's page cache (2 MiB by default) filling as the spool grows."
)


def memory(ctx: Context) -> list[Table]:
    held = Table(
        "memory-listeners",
        "Memory: a process holding 1,000 listeners",
        "Peak RSS (VmHWM) of a fresh process that imports the library and requests, then "
        "builds an app of 1,000 http listeners (five templated fields each, half exact names, "
        "half regexes); the baseline is its RSS before building. event-isc 0.1.0 likewise in "
        "its virtualenv.",
        columns=("peak RSS", "added by the listeners"),
    )
    n = 1000
    ours = _child("listeners", str(n), timeout=120)
    held.rows.append(
        Row(
            f"ours, {n:,} http listeners",
            _mib(ours["peak_kb"]),
            _mib(ours["peak_kb"] - ours["baseline_kb"]),
        )
    )
    if ctx.legacy is not None:
        try:
            theirs = ctx.legacy.memory(n)
            ratio = (ours["peak_kb"] - ours["baseline_kb"]) / max(
                1, theirs["peak_kb"] - theirs["baseline_kb"]
            )
            held.rows[0].checks.append(
                Check("memory added by 1,000 listeners, ours / event-isc", ratio, "", 0)
            )
            held.rows.append(
                Row(
                    f"event-isc 0.1.0, {n:,} http listeners",
                    _mib(theirs["peak_kb"]),
                    _mib(theirs["peak_kb"] - theirs["baseline_kb"]),
                )
            )
        except Skip as exc:
            held.rows.append(Row("event-isc 0.1.0", "—", "—", note=str(exc)))
    else:
        held.rows.append(Row("event-isc 0.1.0", "—", "—", note=ctx.legacy_reason))

    events = ctx.scale(100_000, 10_000)
    spool = Table(
        "memory-spool",
        f"Memory: {events:,} background events against a stopped receiver",
        f"A fresh process triggers {events:,} events with `delivery: background` and a spool, "
        "to an http listener whose receiver is down (a closed port: every attempt is refused "
        "and retried with the default policy, 5 attempts with backoff; a full queue spools at "
        "once), then waits 2 s and closes. RSS is sampled every 0.25 s. Memory must stay "
        "bounded by the queue size: it must stop growing once the queue is full, and the run "
        "with a 10× larger queue may use more, by about what the extra queued notifications "
        "take.",
        columns=("peak RSS", "RSS at 50% → 100% of the events"),
    )
    port = closed_port()
    peaks: dict[int, int] = {}
    for queue_size in (1000, 10_000):
        ctx.log(f"memory: {events} events, queue_size {queue_size}")
        limit = ctx.scale(240, 20)
        result = _child(
            "spool", "--events", str(events), "--queue-size", str(queue_size),
            "--port", str(port), "--max-seconds", str(limit), timeout=limit + 180,
        )  # fmt: skip
        if result["triggered"] < events:
            spool.notes.append(
                f"queue_size {queue_size:,}: triggering was stopped after {limit} s, at "
                f"{result['triggered']:,} of {events:,} events ({result['triggered'] / limit:,.0f}"
                " triggers/s)."
            )
        samples = result["samples"]
        total = result["triggered"]
        half = next((s for s in samples if s["triggered"] >= total // 2), samples[-1])
        end = samples[-1]
        growth = (end["rss_kb"] - half["rss_kb"]) / max(1, result["peak_kb"])
        peaks[queue_size] = result["peak_kb"]
        max_queued = max((s["queued"] or 0) for s in samples)
        max_retrying = max((s["retrying"] or 0) for s in samples)
        spool.rows.append(
            Row(
                f"queue_size {queue_size:,}",
                _mib(result["peak_kb"]),
                f"{_mib(half['rss_kb'])} → {_mib(end['rss_kb'])}",
                checks=[
                    Check(
                        f"queue_size {queue_size:,}: RSS growth over the second half",
                        growth,
                        "<=",
                        0.05,
                        style="+%",
                        explanation=SPOOL_ANALYSIS,
                    )
                ],
                note=(
                    f"baseline {_mib(result['baseline_kb'])}; {result['accepted']:,} accepted "
                    f"into the queue, spool {result['spool']}; at most {max_queued:,} queued and "
                    f"{max_retrying:,} waiting for a retry; {total:,} triggers took "
                    f"{result['trigger_seconds']} s"
                ),
            )
        )
        spool.notes.append(
            f"queue_size {queue_size:,}, RSS over time (s: triggered, RSS, queued, retrying): "
            + "; ".join(
                f"{s['t']}: {s['triggered']:,}, {_mib(s['rss_kb'])}, {s['queued']}, {s['retrying']}"
                for s in samples[:: max(1, len(samples) // 12)]
            )
        )
    extra = (peaks[10_000] - peaks[1000]) / 9000
    spool.notes.append(
        f"Peak RSS with queue_size 10,000 minus with 1,000: {_mib(peaks[10_000] - peaks[1000])}, "
        f"about {extra:.1f} KiB per extra queued notification."
    )
    return [held, spool]
