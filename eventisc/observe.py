"""What an app lets you see: the ``stats()`` snapshot and its one-line summary for logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .delivery.dispatcher import Dispatcher
    from .metrics import AppMetrics
    from .routing import Route

__all__ = ["HOOKS", "stats", "summary"]

#: Events ``App.on`` accepts: the app's life, a delivery's final outcome, a listener disabled.
HOOKS = ("started", "closed", "delivered", "failed", "spooled", "dropped", "disabled")


def stats(
    metrics: AppMetrics, routes: Sequence[Route], dispatcher: Dispatcher | None
) -> dict[str, Any]:
    """A snapshot of an app's numbers as plain, JSON-serializable dicts (see ``App.stats``)."""
    snapshot = metrics.snapshot({route.name: route.metrics for route in routes})
    listeners = snapshot["listeners"]
    disabled = 0
    for route in routes:
        off = route.listener.disabled is not None
        listeners[route.name]["disabled"] = off
        disabled += off
        breaker = route.wiring.breaker
        if breaker is not None:
            listeners[route.name]["circuit"] = breaker.snapshot()
    snapshot["app"]["disabled"] = disabled
    snapshot["dispatcher"] = dispatcher.stats() if dispatcher is not None else None
    return snapshot


def summary(stats: dict[str, Any]) -> str:
    """One line of a ``stats()`` snapshot, for logs."""
    app = stats["app"]
    text = (
        f"triggered={app['triggered']} delivered={app['delivered']} failed={app['failed']} "
        f"retried={app['retried']} spooled={app['spooled']} dropped={app['dropped']}"
    )
    if app.get("outboxed"):
        text += f" outboxed={app['outboxed']}"
    latency = app["latency"]
    if latency["count"]:
        text += f" avg_latency={latency['sum'] / latency['count'] * 1000:.1f}ms"
    dispatcher = stats.get("dispatcher")
    if dispatcher:
        text += (
            f" queued={dispatcher['queued']} workers={dispatcher['workers']}"
            f" busy={dispatcher['busy']} load_avg={dispatcher['load_avg']:.2f}"
        )
    return text
