"""The ``celery`` kind's listener: its options, the task it renders for an event, and the
delivery of that task with ``app.send_task`` (no task code needed).

With ``broker_url`` eventisc uses its own Celery app for that broker: one per broker URL and
timeout in a process, shared by the listeners, recreated in a child process after ``fork()``,
closed when its last listener closes. Else with ``celery_app`` (``proj.celery:app``, the
listener's or the config's) the task goes through that app, imported when the listener is
built. Else through ``celery.current_app`` (the host application's Celery app, looked up at
each delivery, as event-isc does).

Each thread sends with one producer per Celery app, shared by the listeners, on a connection
the app makes (not from its pool): ``send_task(producer=...)`` skips the pool's acquire and
release around every send (:data:`.apps.producers`).

Celery's publish can block forever when the broker is down or a pooled connection went dead
(celery/celery#4296, #4627, #6911): see :mod:`.apps` for how each publish is bounded.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from typing import Any

import celery

from ..._fork import register
from ...errors import ConfigError, TemplateError
from ...notification import Notification
from ...settings import seconds_option
from ...tracing import headers as trace_headers
from ..base import FilterLike, Listener, mask_url
from .apps import import_app, own_apps, producers, publish_options
from .errors import translate_error
from .options import (
    CELERY_SCHEMA,
    DEFAULT_TIMEOUT,
    as_kwargs,
    check_broker_url,
    send_task_options,
)

__all__ = ["CeleryListener"]

logger = logging.getLogger(__name__)


class CeleryListener(Listener):
    """Send a Celery task by name for each event it hears.

    Thread-safe and fork-safe. ``deliver`` raises :class:`ConnectError` or
    :class:`DeliveryTimeout` when the broker cannot take the task within ``timeout``,
    :class:`Rejected` when it refuses it, :class:`TemplateError` when the arguments cannot be
    serialized.
    """

    kind = "celery"
    schema = CELERY_SCHEMA

    def __init__(
        self,
        event_name: Any = None,
        queue: str | None = None,
        task_name: str | None = None,
        task_args: list[Any] | tuple[Any, ...] | None = None,
        task_kwargs: Mapping[str, Any] | str | None = None,
        send_task_kargs: Mapping[str, Any] | None = None,
        filter: FilterLike = None,
        *,
        send_task_kwargs: Mapping[str, Any] | None = None,
        broker_url: str | None = None,
        celery_app: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        **common: Any,
    ):
        super().__init__(event_name, filter, **common)
        if not isinstance(task_name, str) or not task_name:
            raise ConfigError("a celery listener needs a `task_name`", "task_name")
        self._task_name = self.template(task_name, "task_name")
        self._queue = None if queue is None else self.template(queue, "queue")
        if task_args is not None and not isinstance(task_args, (list, tuple)):
            raise ConfigError(f"must be a list, not {type(task_args).__name__}", "task_args")
        if task_args is None and task_kwargs is None:
            task_kwargs = {"event_name": "{event_name}", "event_data": "{event_data}"}
        self._args = self.template(list(task_args or ()), "task_args")
        self._kwargs = None  # None: "**event_data"
        if isinstance(task_kwargs, str):
            if task_kwargs != "**event_data":
                raise ConfigError(
                    f'must be a mapping or the string "**event_data", not {task_kwargs!r}',
                    "task_kwargs",
                )
        else:
            task_kwargs = task_kwargs or {}
            for key in task_kwargs:
                if not isinstance(key, str):
                    raise ConfigError(f"keyword {key!r} is not a string", "task_kwargs")
            self._kwargs = self.template(dict(task_kwargs), "task_kwargs")
        self.send_task_kwargs = send_task_options(send_task_kwargs, send_task_kargs)
        self.timeout = seconds_option(timeout, "timeout")
        self.broker_url = check_broker_url(broker_url) if broker_url else None
        if celery_app is not None and self.broker_url is not None:
            raise ConfigError(
                "give a `broker_url` (eventisc's own app) or a `celery_app` (yours), not both",
                "celery_app",
            )
        #: ``module:attribute`` of the host's Celery app, and that app (None: current_app).
        self.celery_app_name = celery_app
        self._host_app = import_app(celery_app) if celery_app is not None else None
        self._publish = publish_options(self.timeout)
        self._lock = threading.Lock()
        self._own_app: celery.Celery | None = None
        register(self)

    # -- render / deliver -------------------------------------------------------------------

    def render(self, event_name: str, event_data: Any) -> Notification:
        """Render the task name, queue, args and kwargs for one event. Pure: no I/O."""
        ctx = {"event_name": event_name, "event_data": event_data}
        task_name = self._task_name.render(ctx)
        if not isinstance(task_name, str) or not task_name:
            raise TemplateError(
                f"task_name must render to a non-empty string, not {task_name!r}",
                template=str(self._task_name.source),
            )
        queue = None
        if self._queue is not None:
            queue = self._queue.render(ctx)
            if not isinstance(queue, str) or not queue:
                raise TemplateError(
                    f"queue must render to a non-empty string, not {queue!r}",
                    template=str(self._queue.source),
                )
        args = list(self._args.render(ctx))
        if self._kwargs is None:
            kwargs = as_kwargs(event_data, "**event_data", "the event data")
        else:
            kwargs = as_kwargs(self._kwargs.render(ctx), self._kwargs.source, "task_kwargs")
        serializer = self.send_task_kwargs.get("serializer")
        if serializer in (None, "json"):
            # What kombu's JSON cannot write is converted here, as for every JSON body; with
            # the app's serializer (maybe pickle), what nothing converts is left to it.
            args, kwargs = self.json_encoding.task_arguments(args, kwargs, leave=serializer is None)
        payload = {
            "task_name": task_name,
            "args": args,
            "kwargs": kwargs,
            "queue": queue,
            # A copy (kombu may add to headers); nothing to copy in the usual case.
            "options": copy.deepcopy(self.send_task_kwargs) if self.send_task_kwargs else {},
        }
        return Notification(self.name, self.kind, event_name, payload)

    def deliver(self, notification: Notification) -> str:
        """Send the task; return ``"sent task <id>"``.

        The task id is the notification id unless ``send_task_kwargs`` gives a ``task_id``.
        Returns or raises within about ``timeout`` seconds when the broker is down, silent
        or the pooled connection is dead (for a host app, see :func:`publish_options`).
        """
        payload = notification.payload
        options = dict(payload.get("options") or {})
        if "task_id" not in options:
            options["task_id"] = notification.id
        if payload.get("queue"):
            options["queue"] = payload["queue"]
        options.update(self._publish)
        if trace := trace_headers(notification):  # the trigger's trace (eventisc.tracing)
            options["headers"] = {**(options.get("headers") or {}), **trace}
        # What the headers show of the arguments (Flower, logs): Celery would build it with its
        # pure-Python saferepr, a third of a send's time; repr() is C.
        if "argsrepr" not in options:
            options["argsrepr"] = task_repr(payload["args"])
        if "kwargsrepr" not in options:
            options["kwargsrepr"] = task_repr(payload["kwargs"])
        app = None
        try:
            app = self.celery_app()
            options["producer"] = producers.get(app)
            result = app.send_task(
                payload["task_name"], args=payload["args"], kwargs=payload["kwargs"], **options
            )
        except Exception as exc:
            if app is not None:
                producers.drop(app)  # the next send starts on a fresh connection
            raise translate_error(exc, self._where(app, payload.get("queue"))) from exc
        return f"sent task {result.id}"

    # -- apps -------------------------------------------------------------------------------

    def celery_app(self) -> celery.Celery:
        """The Celery app deliveries go through: eventisc's own (``broker_url``), else the one
        ``celery_app`` names, else the current app."""
        if self._host_app is not None:
            return self._host_app
        if self.broker_url is None:
            app = celery.current_app._get_current_object()
            if id(app) not in _checked:  # reading app.conf costs more than the rest here
                _checked.add(id(app))
                if not app.conf.broker_url:
                    logger.warning(
                        "listener %r sends through celery.current_app %r, which has no "
                        "broker_url: Celery's fallback app, as no app was made current here. "
                        "Name your app with `celery_app: proj.celery:app` in the config (or "
                        "`--celery-app proj.celery:app` on the command line), set "
                        "CELERY_BROKER_URL, call set_default() on your Celery app, or give the "
                        "listener a broker_url.",
                        self.name,
                        app.main,
                    )
            return app
        app = self._own_app
        if app is None:
            with self._lock:
                if self._own_app is None:
                    self._own_app = own_apps.acquire(self.broker_url, self.timeout)
                app = self._own_app
        return app

    def _after_fork(self) -> None:
        # In a child process: forget the parent's app, lock and sockets, never close them.
        self._lock, self._own_app = threading.Lock(), None

    def close(self) -> None:
        """Give up this listener's share of its own app (closed, with its producers'
        connections, when no listener uses it)."""
        with self._lock:
            app, self._own_app = self._own_app, None
        if app is not None:
            own_apps.release(self.broker_url or "", self.timeout, app)

    def describe(self) -> str:
        """``task foo -> queue bar (amqp://guest:***@host:5672//)`` or ``... (current_app)``."""
        queue = f"queue {self._queue.source}" if self._queue is not None else "default queue"
        if self.broker_url is not None:
            where = mask_url(self.broker_url)
        else:
            where = self.celery_app_name or "current_app"
        return f"task {self._task_name.source} -> {queue} ({where})"

    def _where(self, app: celery.Celery | None, queue: str | None) -> str:
        url = self.broker_url or (app.conf.broker_write_url if app is not None else None)
        url = url or "(no broker_url)"
        return f"broker {mask_url(url)}" + (f", queue {queue}" if queue else "")


#: Characters of a task's args or kwargs shown in its headers (Celery's own limit).
REPR_LIMIT = 1024


def task_repr(value: Any) -> str | None:
    """What a task's headers show of its args or kwargs (``argsrepr``, ``kwargsrepr``): their
    ``repr``, cut at :data:`REPR_LIMIT`; None (Celery builds it) if it cannot be had."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__, or a value too deep: Celery's saferepr copes
        return None
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


#: Host apps already checked for a broker_url (none: Celery's fallback app, warned about once).
_checked: set[int] = set()
