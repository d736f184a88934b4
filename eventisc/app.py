"""The App: listeners, their router, and ``trigger()`` running route → filter → render → deliver."""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from logging import DEBUG
from time import monotonic
from typing import TYPE_CHECKING, Any

from .config import env_flag, validate_config
from .delivery import Deliverer, Plan, log_failure, make_plan
from .dispatch import DispatcherSettings
from .errors import ConfigError, TriggerError
from .heartbeat import Heartbeat
from .listeners.base import Listener
from .logs import log_extra
from .masking import mask_payload
from .metrics import AppMetrics
from .notification import Notification
from .observe import Observable
from .report import Delivery, Report
from .retry import RetryPolicy
from .routing import Router
from .settings import seconds_option

if TYPE_CHECKING:
    from .spool import Spool

__all__ = ["App"]

logger = logging.getLogger("eventisc")

#: Top-level options that may also be given as objects from Python.
_OBJECT_OPTIONS = ("retry", "dispatcher", "spool")

#: Values the ``listeners`` argument accepts: config mappings or Listener instances.
ListenerLike = Listener | Mapping[str, Any]


class App(Observable):
    """A set of listeners and the events they hear.

    ``trigger`` may be called from many threads at once. ``close()`` releases connections;
    an App is also a context manager.
    """

    def __init__(
        self,
        name_prefix: str | None = "",
        listeners: Iterable[ListenerLike] | None = None,
        *,
        raise_errors: bool = False,
        dry_run: bool | None = None,
        heartbeat: float | None = None,
        delivery: str = "sync",
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        dispatcher: DispatcherSettings | Mapping[str, Any] | None = None,
        spool: Spool | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        durable: bool = False,
        recover: bool = True,
        report_interval: float | None = None,
        source: str | None = None,
    ):
        for option, seconds in (("heartbeat", heartbeat), ("report_interval", report_interval)):
            if seconds is not None:
                seconds_option(seconds, option)
        self.name_prefix: str = name_prefix or ""
        self.raise_errors = raise_errors
        #: Render and log instead of delivering; defaults to the EVENTISC_DRYRUN variable
        #: read when the app is created.
        self.dry_run: bool = env_flag("EVENTISC_DRYRUN") if dry_run is None else dry_run
        self.source = source
        #: Testing hooks (eventisc.testing): called with (event name, data) at every trigger,
        #: and with (listener, notification) instead of delivering.
        self._observe: Callable[[str, Any], None] | None = None
        self._capture: Callable[[Listener, Notification], None] | None = None
        self._metrics = AppMetrics()
        self._triggered = self._metrics.triggered.inc
        self._app_hooks: dict[str, list[Callable[[Any], object]]] = {}
        self._started = False
        #: False once delivery hooks exist: then every delivery gets its Delivery object.
        self._fast = True
        self.listeners: list[Listener] = []
        self._names: set[str] = set()
        for index, item in enumerate(listeners or ()):
            self._add(item, f"listeners[{index}]")
        self._router = Router(self.listeners)
        if delivery not in ("sync", "background"):
            raise ConfigError(f"must be sync or background, not {delivery!r}", "delivery")
        self.delivery = delivery
        self.retry = RetryPolicy.from_config(retry) if retry is not None else None
        self.durable = durable
        settings = DispatcherSettings.from_config(dispatcher)
        spool_obj = _open_spool(spool)
        if settings.on_full == "spool" and spool_obj is None:
            raise ConfigError("on_full: spool needs a `spool` to write to", "dispatcher.on_full")
        self._has_spool = spool_obj is not None
        background = delivery == "background" or any(
            lis.delivery == "background" for lis in self.listeners
        )
        self._deliverer = Deliverer(spool=spool_obj, settings=settings, background=background)
        for index, lis in enumerate(self.listeners):
            self._deliverer.plans[lis] = self._plan(lis, index)
        self._heartbeat: Heartbeat | None = None
        if background:
            _background_apps.add(self)
            if recover:
                self._deliverer.recover(self.listeners)
        if heartbeat:
            self.start_heartbeat(heartbeat)
        self._reporter: Heartbeat | None = None
        if report_interval:
            self._reporter = Heartbeat(self._log_summary, report_interval, "eventisc-report")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str | None = None) -> App:
        """Build an app from a config mapping (already read from its file)."""
        # Values given as objects from Python (a RetryPolicy, a Spool) are checked by their
        # own constructors; the schema checks what a file can say.
        validate_config(
            {k: v for k, v in config.items() if isinstance(v, (Mapping, list, str, int, float))
             or v is None or k not in _OBJECT_OPTIONS},
            source,
        )  # fmt: skip
        options = dict(config)
        try:
            return cls(
                options.pop("name_prefix", ""),
                options.pop("listeners", None),
                source=source,
                **options,
            )
        except ConfigError as exc:
            if source and not exc.source:
                raise exc.within("", source) from None
            raise

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: ListenerLike) -> Listener:
        """Add a listener (a Listener or a config mapping) after the app was created."""
        index = len(self.listeners)
        added = self._add(listener, f"listeners[{index}]")
        plan = self._plan(added, index)
        if plan.background and self._deliverer.dispatcher is None:
            self.listeners.pop()
            raise ConfigError(
                "a background listener needs an app created with a background listener or "
                "`delivery: background`",
                f"listeners[{index}].delivery",
            )
        self._deliverer.plans[added] = plan
        self._router = Router(self.listeners)
        return added

    def _plan(self, listener: Listener, index: int) -> Plan:
        plan = make_plan(
            listener,
            delivery=self.delivery,
            retry=self.retry,
            durable=self.durable,
            has_spool=self._has_spool,
            settings=self._deliverer.settings,
        )
        if plan.durable and not (plan.background and self._has_spool):
            where = (
                "durable"
                if self.durable and listener.durable is None
                else f"listeners[{index}].durable"
            )
            raise ConfigError("durable delivery needs `delivery: background` and a `spool`", where)
        plan.metrics = self._metrics.listeners.setdefault(listener.name, plan.metrics)
        return plan

    def _add(self, item: ListenerLike, path: str) -> Listener:
        if isinstance(item, Listener):
            listener = item
        elif isinstance(item, Mapping):
            listener = Listener.from_config(item, path)
        else:
            raise ConfigError(
                f"expected a listener mapping or a Listener, not {type(item).__name__}", path
            )
        if listener.name in self._names:
            if listener._explicit_name:
                raise ConfigError(f"duplicate listener name {listener.name!r}", f"{path}.name")
            base, n = listener.name, 2
            while f"{base}#{n}" in self._names:
                n += 1
            listener.name = f"{base}#{n}"
        self._names.add(listener.name)
        self.listeners.append(listener)
        return listener

    def routes(self, event_name: str) -> tuple[Listener, ...]:
        """The listeners ``event_name`` reaches (``name_prefix`` is added first)."""
        return self._router.match(self.name_prefix + event_name)

    # -- triggering ---------------------------------------------------------------------------

    def trigger(self, event_name: str, event_data: Any = None) -> int:
        """Notify every listener of ``event_name``; return how many were notified.

        ``event_data`` defaults to an empty dict. In background mode "notified" means accepted
        for delivery. A failing listener never stops the others: its failure is logged on the
        ``eventisc`` logger and not counted; with ``raise_errors`` a :class:`TriggerError`
        listing the failures known when ``trigger`` returns is raised at the end.
        """
        return self._fire(self.name_prefix + event_name, event_data, None)

    def dispatch(self, event_name: str, event_data: Any = None) -> Report:
        """Like :meth:`trigger`, returning a :class:`Report` with one :class:`Delivery` per
        matching listener: its status, error, attempts and latency. In background mode the
        deliveries are futures: ``report.wait(timeout)``."""
        name = self.name_prefix + event_name
        deliveries: list[Delivery] = []
        self._fire(name, event_data, deliveries)
        return Report(name, deliveries)

    def _fire(self, name: str, event_data: Any, report: list[Delivery] | None) -> int:
        if event_data is None:
            event_data = {}
        if not self._started:
            self._start()
        self._triggered()
        if self._observe is not None:
            self._observe(name, event_data)
        listeners = self._router.match(name)
        if not listeners:
            return 0
        capture = self._capture
        deliverer = self._deliverer
        plans = deliverer.plans
        fast = report is None and self._fast
        start = monotonic()
        notified = 0
        failures: list[tuple[str, BaseException]] | None = None
        for listener in listeners:
            plan = plans[listener]
            metrics = plan.metrics
            metrics.matched.inc()
            delivery = notification = None
            try:
                accept = listener._accept
                if accept is not None:
                    try:
                        rejected = not accept(name, event_data)
                    except Exception as exc:
                        failure = getattr(listener.filter, "failure", None)
                        if failure is None:
                            raise
                        raise failure(exc) from exc
                    if rejected:
                        metrics.filtered.inc()
                        if report is not None:
                            report.append(_finished(listener, None, "skipped", "filtered out"))
                        continue
                notification = listener.render(name, event_data)
                if capture is not None or self.dry_run:
                    if capture is not None:
                        capture(listener, notification)
                    else:
                        self._log_dry_run(listener, notification)
                    notified += 1
                    if report is not None:
                        detail = "captured" if capture is not None else "dry-run"
                        report.append(_finished(listener, notification, "skipped", detail))
                    continue
                if fast and plan.simple:
                    detail = listener.deliver(notification)
                    if detail is not False:
                        latency = monotonic() - start
                        metrics.delivered(latency)
                        notified += 1
                        if logger.isEnabledFor(DEBUG):
                            _log_delivered(listener, name, detail, latency)
                    continue
                delivery = Delivery(listener, notification, plan.priority)
                if report is not None:
                    report.append(delivery)
                if plan.background:
                    if deliverer.enqueue(delivery, plan):
                        notified += 1
                        continue
                else:
                    deliverer.deliver_now(delivery)  # logs a final failure itself
                    if delivery.status in ("delivered", "skipped"):
                        notified += delivery.status == "delivered"
                        continue
                error = delivery.error
                assert error is not None
            except Exception as exc:  # one listener's failure never stops the others
                attempts = 1 if notification is not None else 0
                log_failure(listener, name, exc, attempts, latency=monotonic() - start)
                error = exc
                if delivery is None:
                    delivery = Delivery(listener, notification)
                    if report is not None:
                        report.append(delivery)
                deliverer.finish(delivery, "failed", exc)
            if failures is None:
                failures = []
            failures.append((listener.name, error))
        if failures and self.raise_errors:
            raise TriggerError(name, failures, notified)
        return notified

    def _log_dry_run(self, listener: Listener, notification: Notification) -> None:
        logger.info(
            "dry-run: listener %r would send %r",
            listener.name,
            mask_payload(notification.payload),
            extra=log_extra(notification.event_name, listener.name, 0, "dry-run"),
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every background delivery is final (delivered, given up or spooled);
        False if ``timeout`` seconds ran out first. Immediate in sync mode."""
        return self._deliverer.flush(timeout)

    # -- connections ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Let every listener keep its idle connections alive (and drop the dead ones)."""
        for listener in self.listeners:
            try:
                listener.heartbeat()
            except Exception:
                logger.exception("heartbeat of listener %r failed", listener.name)

    def start_heartbeat(self, interval: float = 60.0) -> Heartbeat:
        """Start (or restart) a daemon thread calling :meth:`heartbeat` every ``interval`` s."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._heartbeat = Heartbeat(self.heartbeat, interval)
        return self._heartbeat

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (for up to ``timeout``, default the dispatcher's
        ``shutdown_timeout``), keep the rest in the spool (or log it), stop the heartbeat and
        release every listener's connections. Idempotent; the app reconnects if used again."""
        self._deliverer.shutdown(timeout)
        for thread in (self._heartbeat, self._reporter):
            if thread is not None:
                thread.stop()
        self._heartbeat = self._reporter = None
        for listener in self.listeners:
            try:
                listener.close()
            except Exception:
                logger.exception("closing listener %r failed", listener.name)
        self._run_app_hooks("closed")

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<App prefix={self.name_prefix!r} listeners={len(self.listeners)}>"


def _log_delivered(listener: Listener, name: str, detail: Any, latency: float) -> None:
    logger.debug(
        "listener %r delivered event %r: %s",
        listener.name,
        name,
        detail,
        extra=log_extra(name, listener.name, 1, "delivered", latency),
    )


def _open_spool(value: Any) -> Spool | None:
    if value is None:
        return None
    from .spool import Spool, SpoolError

    if isinstance(value, Spool):
        return value
    path = value["path"] if isinstance(value, Mapping) else value
    try:
        return Spool(path)
    except SpoolError as exc:
        raise ConfigError(str(exc), "spool.path") from None


def _finished(
    listener: Listener,
    notification: Notification | None,
    status: str,
    detail: str | None,
    error: BaseException | None = None,
) -> Delivery:
    delivery = Delivery(listener, notification)
    delivery.finish(status, error, detail)
    return delivery


#: Apps delivering in the background, closed (so their queues drain) when Python exits.
_background_apps: weakref.WeakSet[App] = weakref.WeakSet()


@atexit.register
def _close_background_apps() -> None:
    for app in list(_background_apps):
        try:
            app.close()
        except Exception:
            logger.exception("closing %r at exit failed", app)
