"""Prometheus export of :meth:`eventisc.App.stats` (``pip install 'eventisc[prometheus]'``).

The collector reads the same numbers as ``stats()`` at each scrape; nothing is counted twice.
Metric names follow Prometheus' conventions: ``eventisc_deliveries_total{listener, outcome}``,
``eventisc_delivery_latency_seconds`` (a histogram), gauges for the background queue. Every
series has an ``app`` label, so several apps can share a registry: each family lists the
samples of every app once.

The apps of this process (:data:`EXPORTED`: the default app, as ``app="eventisc"``, and the
apps registered in prometheus_client's default registry) are collected by one collector in
that registry. With ``PROMETHEUS_MULTIPROC_DIR`` set they are written to that directory
instead (:mod:`eventisc.multiproc`), for a scrape that adds up every process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

try:
    from prometheus_client import REGISTRY
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "Prometheus export needs prometheus-client: pip install 'eventisc[prometheus]'"
    ) from exc

from .metrics import OUTCOMES
from .multiproc import Writer, directory

__all__ = [
    "DEFAULT_NAME",
    "EXPORTED",
    "GAUGE_MODES",
    "EventiscCollector",
    "Exported",
    "HasStats",
    "export_default",
    "families",
    "register",
    "writer",
]

#: The ``app`` label of the default app.
DEFAULT_NAME = "eventisc"


class HasStats(Protocol):
    """What the collector reads: an :class:`eventisc.App` (its ``stats()``)."""

    def stats(self) -> dict[str, Any]: ...


#: Dispatcher gauges: stats key -> (metric name, help).
_GAUGES = {
    "queued": ("eventisc_queue_size", "Notifications waiting in the background queue."),
    "capacity": ("eventisc_queue_capacity", "Size of the background queue."),
    "pending": ("eventisc_pending", "Background deliveries not final yet."),
    "scheduled_retries": ("eventisc_scheduled_retries", "Deliveries waiting for a retry."),
    "workers": ("eventisc_workers", "Background worker threads."),
    "busy": ("eventisc_busy_workers", "Worker threads delivering now."),
    "load": ("eventisc_load", "Busy workers / workers."),
    "load_avg": ("eventisc_load_avg", "Moving average of the load over about a minute."),
    "arrival_rate": ("eventisc_arrival_rate", "Notifications queued per second."),
    "departure_rate": ("eventisc_departure_rate", "Deliveries ended per second."),
    "avg_wait": ("eventisc_queue_wait_seconds_avg", "Average seconds an attempt waited."),
    "avg_service": ("eventisc_service_seconds_avg", "Average seconds an attempt took."),
}
_LISTENER_COUNTERS = {
    "matched": ("eventisc_matched", "Events routed to the listener."),
    "filtered": ("eventisc_filtered", "Events the listener's filter rejected."),
    "retried": ("eventisc_retries", "Failed attempts that were tried again."),
}


#: How Prometheus' multiprocess mode combines each gauge over the processes writing to
#: ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`eventisc.multiproc`); ``live*``: only processes alive.
#: Sizes, counts and rates add up; ratios and averages show the worst process; the outbox
#: gauges describe one shared table, so every process reads the same value.
GAUGE_MODES: dict[str, str] = {
    **{metric: "livesum" for metric, _ in _GAUGES.values()},
    "eventisc_load": "livemax",
    "eventisc_load_avg": "livemax",
    "eventisc_queue_wait_seconds_avg": "livemax",
    "eventisc_service_seconds_avg": "livemax",
    "eventisc_listener_disabled": "livemax",
    "eventisc_circuit_open": "livemax",
    "eventisc_outbox_readable": "livemin",
    "eventisc_outbox_pending": "livemax",
    "eventisc_outbox_dead": "livemax",
    "eventisc_outbox_oldest_pending_seconds": "livemax",
}

#: One app's numbers: its ``app`` label and its ``stats()``.
_Snapshot = tuple[str, dict[str, Any]]


def families(apps: Iterable[tuple[str, HasStats]]) -> Iterator[Metric]:
    """The metric families of ``apps`` (``(app label, app)`` pairs), each family once."""
    snapshots = [(name, app.stats()) for name, app in apps]
    triggered = CounterMetricFamily("eventisc_triggered", "Events triggered.", labels=["app"])
    for name, stats in snapshots:
        triggered.add_metric([name], stats["app"]["triggered"])
    yield triggered
    yield from _listeners(snapshots)
    yield from _circuits(snapshots)
    yield from _outbox(snapshots)
    yield from _dispatchers(snapshots)


class EventiscCollector(Collector):
    """Collects one app's :meth:`~eventisc.App.stats` as Prometheus metrics."""

    def __init__(self, app: HasStats, name: str = "eventisc"):
        self.app = app
        self.name = name

    def collect(self) -> Iterator[Metric]:
        return families([(self.name, self.app)])


def _each_listener(snapshots: list[_Snapshot]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """``([app, listener], the listener's numbers)`` for every listener of every app."""
    for app, stats in snapshots:
        for name, snap in stats["listeners"].items():
            yield [app, name], snap


def _listeners(snapshots: list[_Snapshot]) -> Iterator[Metric]:
    for key, (metric, help_text) in _LISTENER_COUNTERS.items():
        family = CounterMetricFamily(metric, help_text, labels=["app", "listener"])
        for labels, snap in _each_listener(snapshots):
            family.add_metric(labels, snap[key])
        yield family
    deliveries = CounterMetricFamily(
        "eventisc_deliveries",
        "Notifications by final outcome (delivered, failed, dropped, spooled, outboxed).",
        labels=["app", "listener", "outcome"],
    )
    latency = HistogramMetricFamily(
        "eventisc_delivery_latency_seconds",
        "Seconds from trigger to the final outcome of a delivery.",
        labels=["app", "listener"],
    )
    disabled = GaugeMetricFamily(
        "eventisc_listener_disabled",
        "1 while the listener is disabled (its receiver answered 410 Gone).",
        labels=["app", "listener"],
    )
    for labels, snap in _each_listener(snapshots):
        for outcome in OUTCOMES:
            deliveries.add_metric([*labels, outcome], snap[outcome])
        hist = snap["latency"]
        latency.add_metric(labels, list(hist["buckets"].items()), sum_value=hist["sum"])
        disabled.add_metric(labels, int(snap["disabled"]))
    yield deliveries
    yield latency
    yield disabled


def _dispatchers(snapshots: list[_Snapshot]) -> Iterator[Metric]:
    """The background queues of the apps that deliver in the background."""
    dispatchers = [([app], stats["dispatcher"]) for app, stats in snapshots if stats["dispatcher"]]
    if not dispatchers:
        return
    for key, (metric, help_text) in _GAUGES.items():
        gauge = GaugeMetricFamily(metric, help_text, labels=["app"])
        for labels, dispatcher in dispatchers:
            gauge.add_metric(labels, dispatcher[key])
        yield gauge
    for key, help_text in (
        ("arrivals", "Notifications queued for background delivery."),
        ("departures", "Background deliveries that ended."),
    ):
        counter = CounterMetricFamily(f"eventisc_{key}", help_text, labels=["app"])
        for labels, dispatcher in dispatchers:
            counter.add_metric(labels, dispatcher[key])
        yield counter


def _circuits(snapshots: list[_Snapshot]) -> Iterator[Metric]:
    """The background listeners' circuit breakers: open or not, and how often opened."""
    circuits = [
        (labels, snap["circuit"]) for labels, snap in _each_listener(snapshots) if "circuit" in snap
    ]
    if not circuits:
        return
    is_open = GaugeMetricFamily(
        "eventisc_circuit_open",
        "1 while the listener's circuit breaker holds its attempts back (open or half-open).",
        labels=["app", "listener"],
    )
    opened = CounterMetricFamily(
        "eventisc_circuit_opened",
        "Times the listener's circuit breaker opened.",
        labels=["app", "listener"],
    )
    for labels, circuit in circuits:
        is_open.add_metric(labels, int(circuit["state"] != "closed"))
        opened.add_metric(labels, circuit["opened"])
    yield is_open
    yield opened


#: The outbox table's gauges: stats key -> (metric, help).
_OUTBOX_GAUGES = {
    "pending": ("eventisc_outbox_pending", "Rows of the outbox table waiting for delivery."),
    "dead": ("eventisc_outbox_dead", "Dead rows of the outbox table (retries exhausted)."),
    "oldest_pending_age": (
        "eventisc_outbox_oldest_pending_seconds",
        "Age of the oldest row of the outbox table waiting for delivery.",
    ),
}


def _outbox(snapshots: list[_Snapshot]) -> Iterator[Metric]:
    """The outbox tables' backlog, and whether they could be read."""
    outboxes = [([app], stats["outbox"]) for app, stats in snapshots if stats.get("outbox")]
    if not outboxes:
        return
    readable = GaugeMetricFamily(
        "eventisc_outbox_readable", "1 when the outbox table could be read.", labels=["app"]
    )
    for labels, outbox in outboxes:
        readable.add_metric(labels, int("error" not in outbox))
    yield readable
    read = [(labels, outbox) for labels, outbox in outboxes if "error" not in outbox]
    if not read:
        return
    for key, (metric, help_text) in _OUTBOX_GAUGES.items():
        gauge = GaugeMetricFamily(metric, help_text, labels=["app"])
        for labels, outbox in read:
            gauge.add_metric(labels, outbox[key])
        yield gauge


class Exported(Collector):
    """The apps of this process, collected together: the apps added with their ``app``
    label (held weakly: an app that is gone is no longer collected) and the default app as
    ``app="eventisc"`` (looked up at each scrape: it may be built or rebuilt later), unless it
    was added under a name of its own. Thread-safe."""

    def __init__(self) -> None:
        self._apps: dict[str, weakref.ref[HasStats]] = {}
        self._lock = threading.Lock()
        #: Returns the default app, or None while there is none.
        self.default: Callable[[], HasStats | None] | None = None

    def add(self, app: HasStats, name: str = DEFAULT_NAME) -> None:
        """Collect ``app`` as ``app=name``. Raises ValueError when another app has the name."""
        with self._lock:
            held = self._apps.get(name)
            other = held() if held is not None else None
            if other is not None and other is not app:
                raise ValueError(
                    f"another app is exported as app={name!r}: register this one with another "
                    "name (register_prometheus(name=...))"
                )
            for old, ref in list(self._apps.items()):
                if ref() is app:
                    del self._apps[old]
            self._apps[name] = weakref.ref(app)

    def apps(self) -> list[tuple[str, HasStats]]:
        """``(app label, app)`` of every app collected now."""
        with self._lock:
            found = [(name, app) for name, ref in self._apps.items() if (app := ref()) is not None]
        default = self.default() if self.default is not None else None
        named = dict(found)
        if default is not None and DEFAULT_NAME not in named:
            if all(app is not default for app in named.values()):
                found.insert(0, (DEFAULT_NAME, default))
        return found

    def collect(self) -> Iterator[Metric]:
        return families(self.apps())


#: The apps of this process that :func:`register` (default registry) and
#: :func:`export_default` export.
EXPORTED = Exported()
_install_lock = threading.Lock()
_installed = False
_writer: Writer | None = None


def _install() -> None:
    """Export :data:`EXPORTED`: to files with ``PROMETHEUS_MULTIPROC_DIR`` set (a process's
    live numbers would collide with the directory's in the default registry), else in
    prometheus_client's default registry. Once per process."""
    global _installed, _writer
    with _install_lock:
        if _installed:
            return
        if directory() is not None:
            _writer = Writer(lambda: families(EXPORTED.apps()), GAUGE_MODES)
            _writer.start()
        else:
            REGISTRY.register(EXPORTED)
        _installed = True


def writer() -> Writer | None:
    """The writer of this process's numbers in multiprocess mode (None otherwise): its
    ``stop()`` writes them a last time, for a process that ends without Python's exit (a
    Celery prefork pool process)."""
    return _writer


def export_default(default: Callable[[], HasStats | None]) -> None:
    """Export the default app (``default()``, looked up at each scrape) as ``app="eventisc"``."""
    EXPORTED.default = default
    _install()


def register(
    app: HasStats, registry: CollectorRegistry | None = None, name: str = "eventisc"
) -> Collector:
    """Register a collector of ``app`` in ``registry``; returns it.

    Without ``registry``: export ``app`` with the other apps of this process (:data:`EXPORTED`:
    one collector in prometheus_client's default registry, or files in multiprocess mode).
    Raises ValueError when another app is exported as ``name``.
    """
    if registry is None:
        EXPORTED.add(app, name)
        _install()
        return EXPORTED
    collector = EventiscCollector(app, name)
    registry.register(collector)
    return collector
