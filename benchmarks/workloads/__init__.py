"""The workloads, in the order the suite runs them: name -> (function, title, what, seconds)."""

from __future__ import annotations

from collections.abc import Callable

from ..harness import Context, Table
from . import micro

__all__ = ["WORKLOADS"]

Workload = tuple[Callable[[Context], list[Table]], str, str, int]


def _lazy(module: str, function: str) -> Callable[[Context], list[Table]]:
    # I/O workloads import their drivers only when they run.
    def run(ctx: Context) -> list[Table]:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(ctx)

    return run


WORKLOADS: dict[str, Workload] = {
    "routing": (micro.routing, "Routing: 10 / 100 / 1,000 listeners", "trigger() cost", 300),
    "rendering": (micro.rendering, "Rendering: 5 templated fields", "template cost", 120),
    "overhead": (
        micro.overhead,
        "Cost of a filter and INFO logging; of metrics",
        "added cost",
        300,
    ),
    "tracing": (
        _lazy("tracing", "tracing"),
        "OpenTelemetry hooks without a tracer provider",
        "added cost",
        120,
    ),
    "http": (_lazy("http", "http"), "HTTP", "HTTP delivery to a local receiver", 900),
    "latency": (
        _lazy("http", "latency"),
        "Background trigger latency, 50 ms receiver",
        "trigger() call latency",
        300,
    ),
    "rabbit": (_lazy("rabbit", "rabbit"), "RabbitMQ", "20,000 × 200-byte JSON messages", 1200),
    "celery": (_lazy("celery_send", "celery"), "Celery send_task", "send_task", 900),
    "celery_delivery": (
        _lazy("celery_delivery", "celery_delivery"),
        "delivery: celery",
        "trigger handing notifications to Celery",
        300,
    ),
    "celery_workers": (
        _lazy("celery_workers", "celery_workers"),
        "Delivery on Celery workers, 20 ms receiver",
        "one vs two worker processes vs background",
        600,
    ),
    "memory": (_lazy("memory", "memory"), "Memory", "peak RSS", 900),
    "outbox": (
        _lazy("outbox", "outbox"),
        "Outbox",
        "PostgreSQL outbox: writes, relay throughput, latency",
        600,
    ),
}
