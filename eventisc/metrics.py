"""Counters and latency histograms, per listener and per app, cheap enough for the hot path.

A counter is an :func:`itertools.count`: ``next()`` is one C call, atomic under the GIL, so
counts from many threads are exact without a lock (``repr`` reads it without counting). A
histogram is a counter per bucket and a sum. :meth:`AppMetrics.snapshot` returns plain dicts
(JSON-serializable).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from typing import Any

__all__ = ["BUCKETS", "OUTCOMES", "AppMetrics", "Counter", "Histogram", "ListenerMetrics"]

#: Upper bounds (seconds) of the delivery latency histogram's buckets; +Inf is implied.
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

#: How a delivery can end, as counted.
OUTCOMES = ("delivered", "failed", "dropped", "spooled", "outboxed")


class Counter:
    """A thread-safe counter: ``inc()`` is one atomic C call."""

    __slots__ = ("inc", "_count")

    def __init__(self) -> None:
        self._count = itertools.count()
        #: Add one.
        self.inc = self._count.__next__

    @property
    def value(self) -> int:
        return _value(self.inc)


class Histogram:
    """Latencies in fixed buckets (:data:`BUCKETS`), with their count and sum.

    Lock-free: each bucket is a :class:`Counter`; the sum is a float whose ``+=`` the GIL does
    not interrupt (a free-threaded Python could lose a rare addition to the sum, never a
    count).
    """

    __slots__ = ("_buckets", "_sum")

    def __init__(self) -> None:
        self._buckets = [Counter().inc for _ in range(len(BUCKETS) + 1)]
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._buckets[bisect.bisect_left(BUCKETS, seconds)]()
        self._sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """``count``, ``sum`` and cumulative ``buckets`` (``{"0.005": n, ..., "+Inf": n}``)."""
        counts = [_value(inc) for inc in self._buckets]
        cumulative: dict[str, int] = {}
        running = 0
        for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
            running += n
            cumulative["+Inf" if bound == float("inf") else repr(bound)] = running
        return {"count": running, "sum": self._sum, "buckets": cumulative}


def _value(inc: Any) -> int:
    # inc is a bound count.__next__; its __self__ is the itertools.count.
    return int(repr(inc.__self__)[6:-1])


class ListenerMetrics:
    """What happened to one listener's notifications.

    ``matched``: events routed to it; ``filtered``: of those, rejected by its filter;
    ``delivered``/``failed``/``dropped``/``spooled``/``outboxed``: final outcomes (outboxed:
    written to the outbox table, for a relay to deliver); ``retried``: attempts
    that failed and were tried again; ``disabled``: times the listener was disabled (its
    receiver answered 410 Gone); ``latency``: seconds from trigger to a final outcome.
    """

    __slots__ = ("matched", "filtered", "retried", "disabled", "outcomes", "latency", "_delivered")

    def __init__(self) -> None:
        self.matched = Counter()
        self.filtered = Counter()
        self.retried = Counter()
        self.disabled = Counter()
        self.outcomes = {outcome: Counter() for outcome in OUTCOMES}
        self.latency = Histogram()
        self._delivered = self.outcomes["delivered"].inc

    def delivered(self, seconds: float) -> None:
        """Count a delivery (the hot path's shortcut for ``finished("delivered", ...)``)."""
        self._delivered()
        self.latency.observe(seconds)

    def finished(self, outcome: str, seconds: float | None) -> None:
        """Count a final outcome (``delivered``, ``failed``, ``dropped``, ``spooled``,
        ``outboxed``)."""
        counter = self.outcomes.get(outcome)
        if counter is not None:
            counter.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        return {
            "matched": self.matched.value,
            "filtered": self.filtered.value,
            "retried": self.retried.value,
            "disabled_count": self.disabled.value,
            **{outcome: counter.value for outcome, counter in self.outcomes.items()},
            "latency": self.latency.snapshot(),
        }


class AppMetrics:
    """An app's own counter, ``triggered`` (events), and the snapshot of all its numbers."""

    def __init__(self) -> None:
        self.triggered = Counter()

    def snapshot(self, listeners: Mapping[str, ListenerMetrics]) -> dict[str, Any]:
        """``app`` totals (the per-listener numbers summed, ``triggered``) and ``listeners``."""
        per_listener = {name: m.snapshot() for name, m in listeners.items()}
        totals: dict[str, Any] = {"triggered": self.triggered.value}
        for key in ("matched", "filtered", "retried", *OUTCOMES):
            totals[key] = sum(s[key] for s in per_listener.values())
        buckets: dict[str, int] = {}
        for snap in per_listener.values():
            for bound, n in snap["latency"]["buckets"].items():
                buckets[bound] = buckets.get(bound, 0) + n
        totals["latency"] = {
            "count": sum(s["latency"]["count"] for s in per_listener.values()),
            "sum": sum(s["latency"]["sum"] for s in per_listener.values()),
            "buckets": buckets,
        }
        return {"app": totals, "listeners": per_listener}
