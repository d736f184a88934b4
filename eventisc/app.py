"""The App: its routes, and ``trigger()`` running route → filter → render → send.

Adding a listener builds its :class:`~eventisc.routing.Route` (the listener, its plan, its
metrics, its send step); ``trigger`` and ``dispatch`` run the same flow and differ only in the
sink that collects the outcomes: none (``trigger`` counts) or a list of
:class:`~eventisc.report.Delivery` (``dispatch``). Capture (:mod:`eventisc.testing`), dry-run
and delivery hooks rewire the routes once, instead of being flags read at every trigger.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any

from .cloudevents import CloudEvents, check_source
from .config import (
    ConfigSource,
    env_flag,
    in_file_order,
    open_spool,
    read_config,
    resolve_plan,
    validate_config,
    with_celery_app,
)
from .delivery import HOOK_EVENTS, Deliverer, OutboxBatch, Wiring
from .encoding import JSONEncoding
from .errors import ConfigError, TriggerError, config_location
from .heartbeat import Heartbeat
from .listeners.base import Listener
from .metrics import AppMetrics, ListenerMetrics
from .observe import HOOKS, stats, summary
from .reloading import RELOADABLE, Retired, remember, unchanged, unreloadable
from .report import Delivery, Report
from .routing import Route, Router
from .settings import (
    CeleryDeliverySettings,
    DispatcherSettings,
    OutboxSettings,
    Plan,
    RetryPolicy,
    check_mode,
    seconds_option,
)
from .tracing import configured as traced
from .tracing import fire as traced_fire
from .tracing import step as traced_step
from .tracing import watch as watch_tracing
from .tracing import when_armed as when_tracing_armed

if TYPE_CHECKING:
    from .delivery.breaker import CircuitBreaker
    from .delivery.sender import Layer, Resolve, Sender
    from .notification import Notification
    from .outbox.relay import Relay
    from .outbox.writer import OutboxWriter
    from .spool import Spool

__all__ = ["App", "Interceptor", "ListenerLike"]

logger = logging.getLogger(__name__)

#: Top-level options that may also be given as objects from Python.
_OBJECT_OPTIONS = ("retry", "dispatcher", "spool", "outbox", "celery_delivery", "json_default")

#: Values the ``listeners`` argument accepts: config mappings or Listener instances.
ListenerLike = Listener | Mapping[str, Any]


class Interceptor:
    """What :meth:`App.intercept` takes (see :mod:`eventisc.testing`): ``observe(name, data)``
    sees every event triggered, ``capture(listener, notification)`` gets every rendered
    notification instead of it being sent."""

    def observe(self, event_name: str, event_data: Any) -> None:
        raise NotImplementedError("an Interceptor implements observe(event_name, event_data)")

    def capture(self, listener: Listener, notification: Notification) -> None:
        raise NotImplementedError("an Interceptor implements capture(listener, notification)")


class App:
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
        outbox: OutboxSettings | Mapping[str, Any] | str | None = None,
        celery_delivery: CeleryDeliverySettings | Mapping[str, Any] | None = None,
        json_default: str | Callable[[Any], Any] | None = None,
        config_source: str | None = None,
    ):
        for option, seconds in (("heartbeat", heartbeat), ("report_interval", report_interval)):
            if seconds is not None:
                seconds_option(seconds, option)
        self.name_prefix: str = name_prefix or ""
        self.raise_errors = raise_errors
        #: The config file's name, for messages (None: built from Python or a mapping).
        self.config_source = config_source
        #: The CloudEvents ``source`` of listeners with ``format: cloudevents`` and none of
        #: their own.
        self.source: str | None = check_source(source, "source") if source is not None else None
        self.delivery = check_mode(delivery)
        self.retry = RetryPolicy.from_config(retry) if retry is not None else None
        self.durable = durable
        #: How listeners without a ``json_default`` of their own write JSON (None: built in).
        self.json_encoding = JSONEncoding(json_default) if json_default is not None else None
        #: Render and log instead of delivering; defaults to the EVENTISC_DRYRUN variable
        #: read when the app is created.
        self._dry_run: bool = env_flag("EVENTISC_DRYRUN") if dry_run is None else dry_run
        self._interceptor: Interceptor | None = None
        self._metrics = AppMetrics()
        self._triggered = self._metrics.triggered.inc
        self._app_hooks: dict[str, list[Callable[[App], object]]] = {}
        self._started = False
        self._routes: list[Route] = []
        self._router = Router(())
        #: The config the app was built from, and the keys given over the file's (reload).
        self._config: dict[str, Any] = {}
        self._overrides: dict[str, Any] = {}
        self._retired = Retired()
        settings = DispatcherSettings.from_config(dispatcher)
        spool_obj = open_spool(spool)
        if settings.on_full == "spool" and spool_obj is None:
            raise ConfigError("on_full: spool needs a `spool` to write to", "dispatcher.on_full")
        outbox_settings = OutboxSettings.from_config(outbox) if outbox is not None else None
        celery_settings = (
            CeleryDeliverySettings.from_config(celery_delivery) if celery_delivery else None
        )
        built = self._listeners(listeners or ())
        background = delivery == "background" or any(lis.delivery == "background" for lis in built)
        self._deliverer = Deliverer(
            spool=spool_obj,
            settings=settings,
            background=background,
            outbox=outbox_settings,
            celery=celery_settings,
        )
        self._routes = self._routes_of(built)
        self._router = Router(self._routes)
        self._heartbeat: Heartbeat | None = None
        self._reporter: Heartbeat | None = None
        #: The relay :meth:`run_relay` runs (or ran last): its numbers are in :meth:`stats`.
        self._relay: Relay | None = None
        self._start_threads(heartbeat, report_interval)
        if background:
            _background_apps.add(self)
            if recover:
                self._deliverer.recover((route.wiring, route.plan) for route in self._routes)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        config_source: str | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
    ) -> App:
        """Build an app from a config mapping (already read from its file, whose name
        ``config_source`` is: errors name it). ``overrides`` are the keys given as arguments
        over the file's (already in ``config``): :meth:`reload` applies them again."""
        app = cls._from_config(config, config_source)
        app._config = dict(config)
        app._overrides = dict(overrides or {})
        return app

    @classmethod
    def _from_config(cls, config: Mapping[str, Any], config_source: str | None) -> App:
        try:
            validate_config(_file_keys(config), config_source)
        except ConfigError as exc:
            # The listeners are checked too: one load reports every mistake of the file.
            errors = [*exc.errors, *cls._listener_errors(config.get("listeners"), config_source)]
            raise ConfigError.combine(in_file_order(errors, config), config_source) from None
        options = with_celery_app(config)
        try:
            return cls(
                options.pop("name_prefix", ""),
                options.pop("listeners", None),
                config_source=config_source,
                **options,
            )
        except ConfigError as exc:
            if config_source and not exc.source:
                raise exc.within("", config_source) from None
            raise

    # -- listeners and their routes -----------------------------------------------------------

    @property
    def listeners(self) -> list[Listener]:
        """The listeners, in config order (a new list: add one with :meth:`add_listener`)."""
        return [route.listener for route in self._routes]

    def add_listener(self, listener: ListenerLike) -> Listener:
        """Add a listener (a Listener or a config mapping) after the app was created."""
        path = f"listeners[{len(self._routes)}]"
        taken = {route.name for route in self._routes}
        added = self._listener(listener, path, taken)
        self._check_delivery(added, path)
        route = self._route(added, path)  # everything is checked before anything is kept
        self._routes.append(route)
        self._router = Router(self._routes)
        return added

    def _check_delivery(self, listener: Listener, path: str) -> None:
        """A listener added to a running app cannot need what the app was built without."""
        if listener.delivery == "background" and self._deliverer.background is None:
            raise ConfigError(
                "a background listener needs an app created with a background listener or "
                "`delivery: background`",
                f"{path}.delivery",
            )

    def listener(
        self, event_name: str | None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@app.listener("user_created")`` adds the function as a listener of
        kind ``python`` (``func(event_name, event_data)``), and returns it unchanged.

        ``options`` are the listener's: ``event_name_regex``, ``filter``, ``delivery``,
        ``retry``, ``name``, ``data``, ... (docs/python-listeners.md). ConfigError as for
        :meth:`add_listener`."""
        from .listeners.python import function_listener

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_listener(function_listener(func, event_name, options))
            return func

        return decorate

    def _listeners(self, items: Iterable[ListenerLike]) -> list[Listener]:
        return self._build_listeners(items, self.config_source)

    @staticmethod
    def _build_listeners(items: Iterable[ListenerLike], source: str | None) -> list[Listener]:
        """The listeners ``items`` describe; one ConfigError listing every listener's errors
        (each listener is checked, so one load reports them all)."""
        built: list[Listener] = []
        taken: set[str] = set()
        errors: list[ConfigError] = []
        for index, item in enumerate(items):
            path = f"listeners[{index}]"
            try:
                with config_location(source, path):  # warnings name the file and listener
                    listener = App._listener(item, path, taken)
            except ConfigError as exc:
                errors.append(exc)
                continue
            remember(listener, item)
            taken.add(listener.name)
            built.append(listener)
        if errors:
            raise ConfigError.combine(errors)
        return built

    @staticmethod
    def _listener_errors(items: Any, source: str | None) -> list[ConfigError]:
        """The errors of the listeners ``items`` describes (none when it is not a list)."""
        if not isinstance(items, list):
            return []
        try:
            App._build_listeners(items, source)
        except ConfigError as exc:
            return exc.errors
        return []

    @staticmethod
    def _listener(item: ListenerLike, path: str, taken: set[str] | None = None) -> Listener:
        """The listener ``item`` describes, named apart from the names ``taken``."""
        if isinstance(item, Listener):
            listener = item
        elif isinstance(item, Mapping):
            listener = Listener.from_config(item, path)
        else:
            raise ConfigError(
                f"expected a listener mapping or a Listener, not {type(item).__name__}", path
            )
        if taken and listener.name in taken:
            if listener._explicit_name:
                raise ConfigError(f"duplicate listener name {listener.name!r}", f"{path}.name")
            base, n = listener.name, 2
            while f"{base}#{n}" in taken:
                n += 1
            listener.name = f"{base}#{n}"
        return listener

    # -- reload -------------------------------------------------------------------------------

    def reload(self, config_file: ConfigSource | None = None) -> dict[str, list[str]]:
        """Load the config again (from ``config_file``, default the file the app was built
        from) and apply its listeners and ``name_prefix`` (see :mod:`eventisc.reloading`).

        Everything is loaded and checked first: a ConfigError leaves the app as it was. Then
        the routes are swapped at once (a trigger in flight finishes on the old ones);
        listeners whose definition did not change keep their connections, queued work and
        metrics. Other top-level keys need a restart: a change to them is logged and not
        applied. Returns the listener names ``added``, ``changed``, ``removed`` and ``kept``.
        """
        source = config_file if config_file is not None else self.config_source
        if source is None:
            raise ConfigError("this app was not built from a file: give reload() the config")
        config, label = read_config(source)
        config = {**config, **self._overrides}
        validate_config(_file_keys(config), label)
        built = self._build_listeners(config.get("listeners") or (), label)
        old = {route.name: route for route in self._routes}
        routes = self._routes_of(built, old)
        skipped = unreloadable(self._config, config)
        if skipped:
            logger.warning("reload: %s changed; restart to apply (kept as they were)", skipped)
        self.name_prefix = config.get("name_prefix") or ""
        self._routes, self._router = routes, Router(routes)
        self._config = {**self._config, **{key: config.get(key) for key in RELOADABLE}}
        kept = [route for route in routes if old.get(route.name) is route]
        retired = [route.listener for route in old.values() if route not in kept]
        self._retired.add(retired)
        changes = _changes(old, routes, kept)
        logger.info("reloaded %s: %s", label, changes)
        return changes

    def _routes_of(
        self, built: list[Listener], old: Mapping[str, Route] | None = None
    ) -> list[Route]:
        """The listeners' routes (the ``old`` route of a listener a reload did not change);
        one ConfigError listing every listener's error (an error at an app option, the same
        for every listener, once)."""
        routes: list[Route] = []
        errors: dict[tuple[str | None, str], ConfigError] = {}
        for index, listener in enumerate(built):
            previous = old.get(listener.name) if old else None
            if previous is not None and unchanged(previous.listener, listener):
                routes.append(previous)
                continue
            path = f"listeners[{index}]"
            try:
                self._check_delivery(listener, path)
                routes.append(self._route(listener, path))
            except ConfigError as exc:
                errors.setdefault((exc.path, exc.message), exc)
        if errors:
            raise ConfigError.combine(list(errors.values()))
        return routes

    def _route(self, listener: Listener, path: str) -> Route:
        listener.register_secrets()  # under its final name, which stored rows refer to
        if self.json_encoding is not None and "json_encoding" not in vars(listener):
            listener.json_encoding = self.json_encoding
        plan = resolve_plan(
            listener,
            path,
            delivery=self.delivery,
            retry=self.retry,
            durable=self.durable,
            has_spool=self._deliverer.spool is not None,
            has_outbox=self._deliverer.outbox_settings is not None,
            has_celery=self._deliverer.celery_settings is not None,
        )
        cloudevents = getattr(listener, "cloudevents", None)
        if isinstance(cloudevents, CloudEvents):
            cloudevents.use_source(self.source, f"{path}.source")
        metrics = ListenerMetrics()
        return Route(listener, plan, metrics, self._wire(listener, plan, metrics))

    def _wire(self, listener: Listener, plan: Plan, metrics: ListenerMetrics) -> Wiring:
        capture = self._interceptor.capture if self._interceptor is not None else None
        return self._deliverer.wire(listener, plan, metrics, dry_run=self._dry_run, capture=capture)

    def _rewire(self) -> None:
        """Choose every route's send step again (dry-run, capture or hooks changed)."""
        for route in self._routes:
            route.wiring = self._wire(route.listener, route.plan, route.metrics)
            route.send = route.wiring.send

    def plan(self, name: str) -> Plan:
        """How the listener called ``name`` delivers (KeyError if there is none)."""
        for route in self._routes:
            if route.name == name:
                return route.plan
        raise KeyError(name)

    def routes(self, event_name: str) -> tuple[Listener, ...]:
        """The listeners ``event_name`` reaches (``name_prefix`` is added first)."""
        return tuple(route.listener for route in self._router.match(self.name_prefix + event_name))

    @property
    def dry_run(self) -> bool:
        """Render and log (:meth:`Listener.dry_run`) instead of delivering."""
        return self._dry_run

    @dry_run.setter
    def dry_run(self, value: bool) -> None:
        self._dry_run = bool(value)
        self._rewire()

    def intercept(self, interceptor: Interceptor | None) -> Interceptor | None:
        """Have ``interceptor`` see every event and get every rendered notification instead of
        it being sent (None: deliver again); returns the previous one. Used by
        :func:`eventisc.testing.capture`."""
        previous, self._interceptor = self._interceptor, interceptor
        if interceptor is None:
            self.__dict__.pop("_fire", None)
        else:
            self._fire = self._observed_fire  # type: ignore[method-assign]
        self._rewire()
        return previous

    # -- triggering ---------------------------------------------------------------------------

    def trigger(self, event_name: str, event_data: Any = None, *, connection: Any = None) -> int:
        """Notify every listener of ``event_name``; return how many were notified.

        ``event_data`` defaults to an empty dict. In background mode "notified" means accepted
        for delivery, in outbox mode written to the outbox table. A failing listener never
        stops the others: its failure is logged on the ``eventisc`` logger and not counted;
        with ``raise_errors`` a :class:`TriggerError` listing the failures known when
        ``trigger`` returns is raised at the end.

        ``connection``: the caller's open database connection (psycopg, SQLAlchemy
        ``Connection``/``Session``, Django): outbox rows are written in its transaction, so
        they are delivered only if it commits. Without it they are committed at once. When
        they cannot be written, :class:`~eventisc.errors.OutboxError` is raised, whatever
        ``raise_errors`` says: the caller's transaction must know.
        """
        data = {} if event_data is None else event_data
        if self._deliverer.outbox is None:
            return self._fire(self.name_prefix + event_name, data, None)
        return self._outboxed(self.name_prefix + event_name, data, OutboxBatch(), connection)[0]

    def dispatch(
        self, event_name: str, event_data: Any = None, *, connection: Any = None
    ) -> Report:
        """Like :meth:`trigger`, returning a :class:`Report` with one :class:`Delivery` per
        matching listener: its status, error, attempts and latency. In background mode the
        deliveries are futures: ``report.wait(timeout)``; in outbox mode they are final once
        written (``outboxed``)."""
        name = self.name_prefix + event_name
        data = {} if event_data is None else event_data
        if self._deliverer.outbox is not None:
            return Report(name, self._outboxed(name, data, OutboxBatch(), connection)[1])
        deliveries: list[Delivery] = []
        self._fire(name, data, deliveries)
        return Report(name, deliveries)

    def _outboxed(
        self, name: str, data: Any, batch: OutboxBatch, connection: Any
    ) -> tuple[int, OutboxBatch]:
        """:meth:`_fire`, then the trigger's outbox rows written in one statement."""
        writer = self._deliverer.outbox
        assert writer is not None
        try:
            notified = self._fire(name, data, batch)
        finally:
            batch.write(writer, connection)  # an OutboxError goes to the caller
        return notified, batch

    def _fire(
        self, name: str, data: Any, sink: list[Delivery] | None, trace: dict[str, str] | None = None
    ) -> int:
        """Route → filter → render → send, for each route of ``name``; the outcomes go to
        ``sink`` (a list of deliveries, or None: only counted); ``trace``: the context of the
        trigger's span, when traced (see :meth:`_traced_fire`)."""
        if not self._started:
            self._start()
        self._triggered()
        routes = self._router.match(name)
        if not routes:
            return 0
        start = monotonic()
        notified = 0
        failures: list[tuple[str, BaseException]] | None = None
        for route in routes:
            route.matched()
            listener = route.listener
            notification = None
            rendering = False
            try:
                accept = listener._accept
                if accept is not None and not accept(name, data):
                    route.filtered(sink)
                    continue
                rendering = True
                notification = route.render(name, data)
                outcome = (
                    route.send(notification, start, sink)
                    if trace is None
                    else traced_step(route.send, notification, trace, start, sink)
                )
            except Exception as exc:  # one listener's failure never stops the others
                outcome = route.fail(exc, rendering, name, notification, start, sink)
            if outcome is True:
                notified += 1
            elif outcome is not False:
                failures = (failures or []) + [(route.name, outcome)]
        if failures:
            self._failed(name, failures, notified)
        return notified

    _untraced_fire = _fire

    def _traced_fire(
        self, name: str, data: Any, sink: list[Delivery] | None, trace: dict[str, str] | None = None
    ) -> int:
        # App._fire once a tracer provider may be set (eventisc.tracing.when_armed): until
        # then a trigger makes no check at all. With one set, the trigger runs in its span.
        if trace is None and traced():
            return traced_fire(functools.partial(App._untraced_fire, self), name, data, sink)
        return App._untraced_fire(self, name, data, sink, trace)

    def _failed(self, name: str, failures: list[tuple[str, BaseException]], notified: int) -> None:
        # Every failure was logged already; with raise_errors the caller hears of them too.
        if self.raise_errors:
            raise TriggerError(name, failures, notified)

    def _observed_fire(
        self, name: str, data: Any, sink: list[Delivery] | None, trace: dict[str, str] | None = None
    ) -> int:
        # Installed by intercept(): the interceptor sees the event, even one nobody hears.
        interceptor = self._interceptor
        if interceptor is not None:
            interceptor.observe(name, data)
        return App._fire(self, name, data, sink, trace)

    async def atrigger(
        self, event_name: str, event_data: Any = None, *, connection: Any = None
    ) -> int:
        """:meth:`trigger` for ``async`` code: runs in a worker thread, the loop never waits.
        ``connection`` is a synchronous one (the thread uses it while the loop waits)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.trigger, event_name, event_data, connection=connection)
        return await loop.run_in_executor(None, call)

    async def adispatch(
        self, event_name: str, event_data: Any = None, *, connection: Any = None
    ) -> Report:
        """:meth:`dispatch` for ``async`` code (the report's ``wait`` blocks: use
        ``await asyncio.to_thread(report.wait, timeout)``)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.dispatch, event_name, event_data, connection=connection)
        return await loop.run_in_executor(None, call)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every background delivery is final (delivered, given up or spooled);
        False if ``timeout`` seconds ran out first. Immediate in sync mode."""
        return self._deliverer.flush(timeout)

    # -- hooks and stats ----------------------------------------------------------------------

    def on(self, event: str, callback: Callable[..., object] | None = None) -> Any:
        """Call ``callback`` on ``event``; returns it. Without ``callback``, a decorator:
        ``@app.on("failed")``.

        ``started`` (the app's first trigger) and ``closed`` get the app; ``delivered``,
        ``failed``, ``spooled`` and ``dropped`` get the :class:`~eventisc.Delivery` (its
        notification, status, error, attempts, latency). ``disabled`` gets the listener's
        name and the error, once when a ``410 Gone`` disables it (``disable_on_gone``).
        Callbacks run in the thread that delivered; one that raises is logged and never breaks
        delivery.
        """
        if event not in HOOKS:
            raise ValueError(f"unknown event {event!r}; App.on takes: {', '.join(HOOKS)}")
        if callback is None:
            return lambda fn: self.on(event, fn)
        if event == "disabled":
            self._deliverer.hooks.disabled.append(callback)
        elif event in HOOK_EVENTS:
            first = not self._deliverer.hooks
            self._deliverer.hooks.add(event, callback)
            if first:
                self._rewire()  # every delivery needs its Delivery now, for the callbacks
        else:
            self._app_hooks.setdefault(event, []).append(callback)
        return callback

    def enable(self, name: str) -> bool:
        """Send to the listener called ``name`` again after a ``410 Gone`` disabled it; False
        if it was not disabled (KeyError if there is no such listener)."""
        for route in self._routes:
            if route.name == name:
                return self._deliverer.enable(route.listener)
        raise KeyError(name)

    def _run_app_hooks(self, event: str) -> None:
        for hook in self._app_hooks.get(event, ()):
            try:
                hook(self)
            except Exception:
                logger.exception("a %r hook failed", event)

    def _start(self) -> None:
        self._started = True
        watch_tracing()  # OpenTelemetry loaded by now, should the import hook have missed it
        self._run_app_hooks("started")

    def stats(self) -> dict[str, Any]:
        """A snapshot of the app's numbers as plain, JSON-serializable dicts.

        ``app``: totals (``triggered``, ``matched``, ``filtered``, ``delivered``, ``failed``,
        ``retried``, ``dropped``, ``spooled``, ``outboxed``, ``latency`` as count, sum and
        cumulative buckets), ``disabled`` (listeners disabled now); ``listeners``: the same per
        listener name, with ``disabled`` (true while a ``410 Gone`` keeps it disabled) and
        ``disabled_count`` (times disabled), and ``circuit``, the breaker of a background
        listener; ``dispatcher``: the background queue and workers
        (None in sync mode); ``outbox`` (with an ``outbox``): the table's ``pending`` and
        ``dead`` rows and the age of its oldest pending row in seconds, or its ``error`` when
        PostgreSQL cannot be read (one query); ``relay`` (once :meth:`run_relay` ran): the
        relay's own numbers (``Relay.stats``). Cheap: call it every second if you like.
        """
        snapshot = stats(self._metrics, self._routes, self._deliverer.dispatcher)
        settings = self._deliverer.outbox_settings
        if settings is not None:
            snapshot["outbox"] = _outbox_backlog(settings, self._deliverer.outbox)
        if self._relay is not None:
            snapshot["relay"] = self._relay.stats()
        return snapshot

    def register_prometheus(self, registry: Any = None, name: str = "eventisc") -> Any:
        """Export :meth:`stats` to Prometheus (``pip install 'eventisc[prometheus]'``);
        returns the collector, registered in ``registry`` (default: prometheus_client's).
        ``name`` is the ``app`` label of every series (distinct per app in one registry)."""
        from .prometheus import register

        return register(self, registry, name)

    def _log_summary(self) -> None:
        logger.info("eventisc: %s", summary(self.stats()))

    # -- the outbox relay -----------------------------------------------------------------------

    def run_relay(
        self,
        *,
        concurrency: int | None = None,
        once: bool = False,
        report_interval: float = 60.0,
        install_signals: bool = True,
        via: str | None = None,
    ) -> int:
        """Deliver the outbox table's rows with this app's listeners until stopped; return the
        exit status. See :class:`eventisc.outbox.relay.Relay`.

        ``concurrency`` (default: the ``outbox`` setting) bounds deliveries at once; ``once``
        returns when no row is due; ``report_interval`` seconds between INFO lines (0: none).
        With ``install_signals``, SIGTERM and SIGINT stop it gracefully (main thread only).
        ``via="celery"`` hands each row to the Celery workers instead of delivering it
        (``celery_delivery``). Raises ConfigError when the app has no ``outbox`` (or, with
        ``via``, no ``celery_delivery``).
        """
        from .outbox.relay import Relay

        relay = Relay(
            self, concurrency=concurrency, once=once, report_interval=report_interval, via=via
        )
        self._relay = relay
        return relay.run(install_signals=install_signals)

    @property
    def outbox_settings(self) -> OutboxSettings | None:
        """The ``outbox`` settings (None when the app has no outbox)."""
        return self._deliverer.outbox_settings

    def relay_senders(
        self, note: Layer, resolve: Resolve
    ) -> dict[str, tuple[Sender, CircuitBreaker | None]]:
        """Each listener's sender for an outbox relay, by name, with its circuit breaker
        (:meth:`eventisc.delivery.Deliverer.relay_sender`); its outcomes are counted in the
        listener's numbers of :meth:`stats`, and run the app's hooks."""
        return {
            route.name: self._deliverer.relay_sender(
                route.listener, route.plan, route.metrics, route.wiring.recorder,
                note=note, resolve=resolve,
            )
            for route in self._routes
        }  # fmt: skip

    @property
    def celery_delivery(self) -> CeleryDeliverySettings | None:
        """The ``celery_delivery`` settings (None when the app has none)."""
        return self._deliverer.celery_settings

    @property
    def spool(self) -> Spool | None:
        """The spool failed notifications are kept in (None when the app has none)."""
        return self._deliverer.spool

    def handoff_senders(
        self, note: Layer, resolve: Resolve
    ) -> dict[str, tuple[Sender, CircuitBreaker | None]]:
        """Each listener's sender for an outbox relay that hands its rows to the Celery
        workers (:meth:`eventisc.delivery.Deliverer.handoff_sender`), by name. Raises
        ConfigError when the app has no ``celery_delivery``."""
        return {
            route.name: (
                self._deliverer.handoff_sender(
                    route.listener, route.plan, route.wiring.recorder, note=note
                ),
                None,
            )
            for route in self._routes
        }

    def keep_dead(self, notification: Notification, attempts: int, error: str) -> str:
        """Keep a notification a Celery worker cannot deliver (its listener is not in this
        config) as a dead letter: in the outbox table or the spool, as the worker keeps its
        final failures (:meth:`eventisc.delivery.Deliverer.keep_dead`). Where it went."""
        return self._deliverer.keep_dead(notification, attempts, error)

    def worker_senders(self) -> dict[str, Sender]:
        """Each listener's sender for a Celery worker, by name
        (:meth:`eventisc.delivery.Deliverer.worker_sender`); its outcomes are counted in the
        listener's numbers of :meth:`stats`, and run the app's hooks."""
        return {
            route.name: self._deliverer.worker_sender(
                route.listener, route.plan, route.metrics, route.wiring.recorder
            )
            for route in self._routes
        }

    # -- connections ----------------------------------------------------------------------------

    def _start_threads(self, heartbeat: float | None, report_interval: float | None) -> None:
        if heartbeat:
            self.start_heartbeat(heartbeat)
        if report_interval:
            self._reporter = Heartbeat(self._log_summary, report_interval, "eventisc-report")

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
        self._retired.close_all()
        self._run_app_hooks("closed")

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<App prefix={self.name_prefix!r} listeners={len(self._routes)}>"


def _file_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``config`` the schema checks: values given as objects from Python (a
    RetryPolicy, a Spool) are checked by their own constructors."""
    return {
        key: value
        for key, value in config.items()
        if isinstance(value, (Mapping, list, str, int, float))
        or value is None
        or key not in _OBJECT_OPTIONS
    }


def _changes(old: dict[str, Route], routes: list[Route], kept: list[Route]) -> dict[str, list[str]]:
    """What a reload did, by listener name."""
    names = [route.name for route in routes]
    return {
        "added": [name for name in names if name not in old],
        "changed": [route.name for route in routes if route.name in old and route not in kept],
        "removed": [name for name in old if name not in names],
        "kept": [route.name for route in kept],
    }


def _outbox_backlog(settings: OutboxSettings, writer: OutboxWriter | None) -> dict[str, Any]:
    """The outbox's backlog, through the writer's pool when the app writes to it (else on a
    connection of its own); its error instead when PostgreSQL cannot be read."""
    from .errors import OutboxError
    from .outbox.admin import backlog

    try:
        return writer.backlog() if writer is not None else backlog(settings)
    except OutboxError as exc:
        return {"table": settings.table, "error": str(exc)}


# A trigger checks for a tracer provider only once OpenTelemetry's set_tracer_provider ran.
when_tracing_armed(lambda: setattr(App, "_fire", App._traced_fire))

#: Apps delivering in the background, closed (so their queues drain) when Python exits.
_background_apps: weakref.WeakSet[App] = weakref.WeakSet()


@atexit.register
def _close_background_apps() -> None:
    for app in list(_background_apps):
        try:
            app.close()
        except Exception:
            logger.exception("closing %r at exit failed", app)
