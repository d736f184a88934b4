"""What an App lets you see and hook into: stats, lifecycle hooks, summaries, asyncio.

:class:`Observable` is a part of :class:`eventisc.App`; it lives here to keep the App's own
module about routing and delivering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .metrics import AppMetrics

if TYPE_CHECKING:
    from .delivery import Deliverer
    from .heartbeat import Heartbeat
    from .report import Report

__all__ = ["HOOKS", "Observable", "summary"]

logger = logging.getLogger("eventisc")

#: Events ``App.on`` accepts: the app's life, and a delivery's final outcome.
HOOKS = ("started", "closed", "delivered", "failed", "spooled", "dropped")
_APP_HOOKS = ("started", "closed")


class Observable:
    """Stats, hooks, periodic summaries and asyncio entry points of an App."""

    _deliverer: Deliverer
    _metrics: AppMetrics
    _app_hooks: dict[str, list[Callable[[Any], object]]]
    _started: bool
    _fast: bool
    _reporter: Heartbeat | None

    def trigger(self, event_name: str, event_data: Any = None) -> int:
        raise NotImplementedError  # App's

    def dispatch(self, event_name: str, event_data: Any = None) -> Report:
        raise NotImplementedError  # App's

    # -- hooks ----------------------------------------------------------------------------------

    def on(self, event: str, callback: Callable[[Any], object] | None = None) -> Any:
        """Call ``callback`` on ``event``; returns it. Without ``callback``, a decorator:
        ``@app.on("failed")``.

        ``started`` (the app's first trigger) and ``closed`` get the app; ``delivered``,
        ``failed``, ``spooled`` and ``dropped`` get the :class:`~eventisc.Delivery` (its
        notification, status, error, attempts, latency). Callbacks run in the thread that
        delivered; one that raises is logged and never breaks delivery.
        """
        if event not in HOOKS:
            raise ValueError(f"unknown event {event!r}; App.on takes: {', '.join(HOOKS)}")
        if callback is None:
            return lambda fn: self.on(event, fn)
        if event in _APP_HOOKS:
            self._app_hooks.setdefault(event, []).append(callback)
        else:
            self._deliverer.hooks.setdefault(event, []).append(callback)
            self._fast = False  # every delivery needs its Delivery now, for the callbacks
        return callback

    def _run_app_hooks(self, event: str) -> None:
        for hook in self._app_hooks.get(event, ()):
            try:
                hook(self)
            except Exception:
                logger.exception("a %r hook failed", event)

    def _start(self) -> None:
        self._started = True
        self._run_app_hooks("started")

    # -- stats ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot of the app's numbers as plain, JSON-serializable dicts.

        ``app``: totals (``triggered``, ``matched``, ``filtered``, ``delivered``, ``failed``,
        ``retried``, ``dropped``, ``spooled``, ``latency`` as count, sum and cumulative
        buckets); ``listeners``: the same per listener name; ``dispatcher``: the background
        queue and workers (None in sync mode). Cheap: call it every second if you like.
        """
        snapshot = self._metrics.snapshot()
        for listener, plan in self._deliverer.plans.items():
            if plan.breaker is not None and listener.name in snapshot["listeners"]:
                snapshot["listeners"][listener.name]["circuit"] = plan.breaker.snapshot()
        dispatcher = self._deliverer.dispatcher
        snapshot["dispatcher"] = dispatcher.stats() if dispatcher is not None else None
        return snapshot

    def register_prometheus(self, registry: Any = None, name: str = "eventisc") -> Any:
        """Export :meth:`stats` to Prometheus (``pip install 'eventisc[prometheus]'``);
        returns the collector, registered in ``registry`` (default: prometheus_client's).
        ``name`` is the ``app`` label of every series (distinct per app in one registry)."""
        from .prometheus import register

        return register(self, registry, name)

    def _log_summary(self) -> None:
        logger.info("eventisc: %s", summary(self.stats()))

    # -- asyncio ------------------------------------------------------------------------------

    async def atrigger(self, event_name: str, event_data: Any = None) -> int:
        """:meth:`trigger` for ``async`` code: runs in a worker thread, the loop never waits."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.trigger, event_name, event_data)

    async def adispatch(self, event_name: str, event_data: Any = None) -> Report:
        """:meth:`dispatch` for ``async`` code (the report's ``wait`` blocks: use
        ``await asyncio.to_thread(report.wait, timeout)``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.dispatch, event_name, event_data)


def summary(stats: dict[str, Any]) -> str:
    """One line of a :meth:`Observable.stats` snapshot, for logs."""
    app = stats["app"]
    text = (
        f"triggered={app['triggered']} delivered={app['delivered']} failed={app['failed']} "
        f"retried={app['retried']} spooled={app['spooled']} dropped={app['dropped']}"
    )
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
