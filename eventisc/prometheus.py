"""Prometheus export of :meth:`eventisc.App.stats` (``pip install 'eventisc[prometheus]'``).

The collector reads the same numbers as ``stats()`` at each scrape; nothing is counted twice.
Metric names follow Prometheus' conventions: ``eventisc_deliveries_total{listener, outcome}``,
``eventisc_delivery_latency_seconds`` (a histogram), gauges for the background queue. Every
series has an ``app`` label, so several apps can share a registry.
"""

from __future__ import annotations

from collections.abc import Iterator
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

__all__ = ["EventiscCollector", "HasStats", "register"]


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


class EventiscCollector(Collector):
    """Collects one app's :meth:`~eventisc.App.stats` as Prometheus metrics."""

    def __init__(self, app: HasStats, name: str = "eventisc"):
        self.app = app
        self.name = name

    def collect(self) -> Iterator[Metric]:
        stats = self.app.stats()
        app = [self.name]
        triggered = CounterMetricFamily("eventisc_triggered", "Events triggered.", labels=["app"])
        triggered.add_metric(app, stats["app"]["triggered"])
        yield triggered
        listeners = stats["listeners"]
        for key, (metric, help_text) in _LISTENER_COUNTERS.items():
            family = CounterMetricFamily(metric, help_text, labels=["app", "listener"])
            for name, snap in listeners.items():
                family.add_metric([*app, name], snap[key])
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
        for name, snap in listeners.items():
            for outcome in OUTCOMES:
                deliveries.add_metric([*app, name, outcome], snap[outcome])
            hist = snap["latency"]
            latency.add_metric([*app, name], list(hist["buckets"].items()), sum_value=hist["sum"])
        yield deliveries
        yield latency
        disabled = GaugeMetricFamily(
            "eventisc_listener_disabled",
            "1 while the listener is disabled (its receiver answered 410 Gone).",
            labels=["app", "listener"],
        )
        for name, snap in listeners.items():
            disabled.add_metric([*app, name], int(snap["disabled"]))
        yield disabled
        yield from _circuits(app, listeners)
        yield from _outbox(app, stats.get("outbox"))
        dispatcher: dict[str, Any] | None = stats["dispatcher"]
        if dispatcher is None:
            return
        for key, (metric, help_text) in _GAUGES.items():
            gauge = GaugeMetricFamily(metric, help_text, labels=["app"])
            gauge.add_metric(app, dispatcher[key])
            yield gauge
        for key, help_text in (
            ("arrivals", "Notifications queued for background delivery."),
            ("departures", "Background deliveries that ended."),
        ):
            counter = CounterMetricFamily(f"eventisc_{key}", help_text, labels=["app"])
            counter.add_metric(app, dispatcher[key])
            yield counter


def _circuits(app: list[str], listeners: dict[str, Any]) -> Iterator[Metric]:
    """The background listeners' circuit breakers: open or not, and how often opened."""
    circuits = {name: snap["circuit"] for name, snap in listeners.items() if "circuit" in snap}
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
    for name, circuit in circuits.items():
        is_open.add_metric([*app, name], int(circuit["state"] != "closed"))
        opened.add_metric([*app, name], circuit["opened"])
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


def _outbox(app: list[str], outbox: dict[str, Any] | None) -> Iterator[Metric]:
    """The outbox table's backlog, and whether it could be read."""
    if outbox is None:
        return
    readable = GaugeMetricFamily(
        "eventisc_outbox_readable", "1 when the outbox table could be read.", labels=["app"]
    )
    readable.add_metric(app, int("error" not in outbox))
    yield readable
    if "error" in outbox:
        return
    for key, (metric, help_text) in _OUTBOX_GAUGES.items():
        gauge = GaugeMetricFamily(metric, help_text, labels=["app"])
        gauge.add_metric(app, outbox[key])
        yield gauge


def register(
    app: HasStats, registry: CollectorRegistry | None = None, name: str = "eventisc"
) -> EventiscCollector:
    """Register a collector of ``app`` in ``registry`` (default: the global one)."""
    collector = EventiscCollector(app, name)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
