"""The Listener base class and the registry of kinds.

A kind renders a :class:`~eventisc.notification.Notification` for an event (pure, no I/O)
and delivers it (the only I/O). A custom kind can do both at once by implementing
``_do_notify(event_name, event_data)``, as in event-isc, rendering its own templated options
with ``self.format(value, event_name, event_data, **names)``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar

from ..encoding import BUILTIN as BUILTIN_JSON
from ..encoding import JSONEncoding
from ..errors import ConfigError
from ..filters import Filter
from ..logs import log_extra
from ..masking import mask_payload, mask_url
from ..notification import Notification
from ..registry import Registry
from ..schema import validate
from ..secret_values import MIN_FIELD_LENGTH
from ..secret_values import register as register_secret
from ..settings import DELIVERY_MODES, RETRY_SCHEMA, RetryPolicy, check_mode, env_flag
from ..template import BASE_NAMES, Template, TemplateCache, compile_template

__all__ = [
    "BUILTIN_KINDS",
    "FORMAT_TEMPLATES",
    "LISTENER_PROPERTIES",
    "FilterLike",
    "Listener",
    "listener_schema",
    "mask_url",
    "missing_driver",
]


#: Built-in kinds and the module that defines each; imported on first use.
BUILTIN_KINDS: dict[str, str] = {
    "http": "eventisc.listeners.http",
    "celery": "eventisc.listeners.celery",
    "rabbit": "eventisc.listeners.rabbit",
    "python": "eventisc.listeners.python",
}

#: Options every listener takes that say how (not what) it delivers; set on the instance.
DELIVERY_OPTIONS = ("delivery", "retry", "durable", "priority", "ordering_key", "on_dead")
#: What a dead outbox row of an ordered listener does to the rows after it of the same key.
ON_DEAD = ("block", "skip")

FilterLike = Filter | Callable[[str, Any], bool] | Mapping[str, Any] | None

#: The templates :meth:`Listener.format` compiled, by template string (and the names of its
#: keyword arguments). Bounded: a kind may format strings that come from event data.
FORMAT_TEMPLATES = TemplateCache(4096)
_format_template = FORMAT_TEMPLATES.lookup

logger = logging.getLogger(__name__)


#: Options every listener takes, whatever its kind.
LISTENER_PROPERTIES: dict[str, Any] = {
    "kind": {
        "type": "string",
        "description": "`http`, `celery`, `rabbit`, `python`, or a custom kind.",
    },
    "name": {
        "type": "string",
        "minLength": 1,
        "description": "A stable name for logs, errors, stats and the spool; explicit names "
        "must be unique. Default: `kind:event_name` (or `kind:regex`), with `#2`, `#3` added "
        "to repeats (`eventisc check` shows them).",
    },
    "event_name": {
        "type": "string",
        "minLength": 1,
        "description": "The exact full event name (prefix included). Give exactly one of "
        "`event_name` and `event_name_regex`.",
    },
    "event_name_regex": {
        "type": "string",
        "minLength": 1,
        "description": "A regex matched with `re.match`: anchored at the start of the full "
        "event name, not at the end (add `$` for a full match).",
    },
    "filter": {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"type": "string"}},
        "description": "Keeps only some events: `{kind: expr, expr: \"event_data['amount'] > "
        '10"}`, or a custom filter kind.',
    },
    "delivery": {
        "enum": list(DELIVERY_MODES),
        "description": "This listener's delivery mode, `sync`, `background`, `outbox` or "
        "`celery`. "
        "Default: the app's `delivery`.",
    },
    "retry": {
        **RETRY_SCHEMA,
        "description": "This listener's own retry policy (the keys of the `retry` table), "
        "replacing the app's whole. Default: the app's `retry`.",
    },
    "durable": {
        "type": "boolean",
        "description": "Background delivery: write each notification to the spool before "
        "`trigger` returns. Default: the app's `durable`.",
    },
    "priority": {
        "type": "integer",
        "default": 0,
        "description": "Order in the background queue: lower numbers are delivered first.",
    },
    "ordering_key": {
        "type": "string",
        "minLength": 1,
        "description": "Outbox delivery: a template (`\"{event_data['order_id']}\"`); this "
        "listener's notifications with the same key are delivered one at a time, in commit "
        "order, across all relays. Unset: no order.",
    },
    "on_dead": {
        "enum": list(ON_DEAD),
        "default": "block",
        "description": "With an `ordering_key`: a dead row (retries exhausted) holds back "
        "the rows after it of its key until it is replayed or purged (`block`), or they go on "
        "without it (`skip`).",
    },
    "json_default": {
        "type": "string",
        "description": 'A function, `"package.module:function"`, called for each object its '
        "JSON bodies and task arguments hold that JSON cannot (like the `default` of "
        "`json.dumps`), "
        "before the built-in conversions. Default: the app's `json_default`.",
    },
}


def missing_driver(kind: str, package: str, extra: str) -> ImportError:
    """The error a kind's module raises when its driver is not installed."""
    return ImportError(f"the {kind} kind needs {package}: pip install 'eventisc[{extra}]'")


class Listener:
    """Base class of listeners.

    Subclasses declare ``kind = "..."`` (which registers them) and either implement
    ``_do_notify(event_name, event_data)`` or, to get dry-run, capture and retries of the
    rendered value, ``render()`` and ``deliver()``.

    ``schema`` is the JSON Schema of the kind's own options (``{"properties": {...},
    "required": [...]}``); None accepts any options. ``template_names`` are the names the
    kind's templates may use besides ``event_name`` and ``event_data``.
    """

    kind: ClassVar[str]
    schema: ClassVar[dict[str, Any] | None] = None
    #: Delivery settings every kind takes (see :data:`DELIVERY_OPTIONS`); None: the app's.
    delivery: str | None = None
    retry: RetryPolicy | None = None
    durable: bool | None = None
    priority: int = 0
    #: Outbox delivery: the ordering key's template text (None: unordered), and ``on_dead``.
    ordering_key: str | None = None
    on_dead: str = "block"
    _ordering: Template | None = None
    #: How this listener writes JSON (its own ``json_default``, else the app's).
    json_encoding: JSONEncoding = BUILTIN_JSON
    #: Whether a ``410 Gone`` answer disables the listener (the http kind's option).
    disable_on_gone: bool = False
    #: Why the listener is disabled (its receiver answered 410 Gone), or None: it is enabled.
    disabled: str | None = None
    template_names: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[Registry[Listener]] = Registry(
        "listener", BUILTIN_KINDS, "eventisc.listeners"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Listener.registry.register(cls.kind, cls)

    def __init__(
        self,
        event_name: str | re.Pattern[str] | None = None,
        filter: FilterLike = None,
        *,
        event_name_regex: str | re.Pattern[str] | None = None,
        name: str | None = None,
        delivery: str | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        durable: bool | None = None,
        priority: int = 0,
        ordering_key: str | None = None,
        on_dead: str | None = None,
        json_default: str | Callable[[Any], Any] | None = None,
    ):
        if json_default is not None:
            self.json_encoding = JSONEncoding(json_default)
        if isinstance(event_name, re.Pattern):  # event-isc passes a compiled regex here
            event_name, event_name_regex = None, event_name
        if (event_name is None) == (event_name_regex is None):
            raise ConfigError("give exactly one of `event_name` or `event_name_regex`")
        self.event_name: str | None = event_name
        self.event_name_regex: re.Pattern[str] | None = (
            _compile_regex(event_name_regex) if event_name_regex is not None else None
        )
        if isinstance(filter, Mapping):
            filter = Filter.from_config(filter, "filter")
        self.filter = filter
        kind = getattr(self, "kind", type(self).__name__)
        match = event_name if event_name is not None else self.event_name_regex.pattern  # type: ignore[union-attr]
        self.name: str = name or f"{kind}:{match}"
        self._explicit_name = name is not None
        self._set_delivery_options(
            {
                "delivery": delivery,
                "retry": retry,
                "durable": durable,
                "priority": priority,
                "ordering_key": ordering_key,
                "on_dead": on_dead,
            }
        )

    @property
    def filter(self) -> Callable[[str, Any], bool] | None:
        """The filter (an :class:`~eventisc.Filter` or any ``f(event_name, event_data)``)."""
        return self._filter

    @filter.setter
    def filter(self, value: Callable[[str, Any], bool] | None) -> None:
        self._filter = value
        # What the app calls per event: an expr filter's compiled function itself.
        self._accept = getattr(value, "predicate", value)

    _filter: Callable[[str, Any], bool] | None = None
    _accept: Callable[[str, Any], Any] | None = None

    def _set_delivery_options(self, options: Mapping[str, Any]) -> None:
        if options.get("delivery") is not None:
            check_mode(options["delivery"])
        if options.get("on_dead") not in (None, *ON_DEAD):
            raise ConfigError(f"must be block or skip, not {options['on_dead']!r}", "on_dead")
        for key in DELIVERY_OPTIONS:
            value = options.get(key)
            if key == "retry" and value is not None:
                value = RetryPolicy.from_config(value, "retry")
            elif key == "ordering_key" and value is not None:
                self._ordering = self.template(value, "ordering_key")
            if value is not None:
                setattr(self, key, value)

    def render_ordering_key(self, event_name: str, event_data: Any) -> str | None:
        """This event's ordering key as text (None without an ``ordering_key``)."""
        if self._ordering is None:
            return None
        return str(self._ordering.render({"event_name": event_name, "event_data": event_data}))

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def get(cls, kind: str) -> type[Listener]:
        """The listener class of ``kind``, importing a built-in kind's module on first use."""
        return cls.registry.get(kind)

    @classmethod
    def from_config(cls, definition: Mapping[str, Any], path: str = "") -> Listener:
        """Build a listener from its config mapping (validated against the kind's schema).

        Raises :class:`ConfigError` whose path starts with ``path`` (``listeners[2]``).
        """
        options = dict(definition)
        kind = options.get("kind")
        listener_cls = cls._kind_class(kind, path)
        validate(options, listener_schema(listener_cls), path, f"{kind} listeners")
        options.pop("kind")
        name = options.pop("name", None)
        delivery_options = {key: options.pop(key) for key in DELIVERY_OPTIONS if key in options}
        _build_match_options(options, path)
        try:
            listener = listener_cls(**options)
        except ConfigError as exc:
            raise exc.within(path) from None
        except TypeError as exc:
            raise ConfigError(f"bad options for a {kind} listener: {exc}", path) from None
        if name is not None:
            listener.name = name
            listener._explicit_name = True
        try:
            listener._set_delivery_options(delivery_options)
        except ConfigError as exc:
            raise exc.within(path) from None
        return listener

    @classmethod
    def _kind_class(cls, kind: Any, path: str) -> type[Listener]:
        """The class a config's ``kind`` names (``cls`` itself when called on a subclass)."""
        try:
            if not isinstance(kind, str):
                raise ConfigError("a listener needs a `kind` (http, celery, rabbit, ...)")
            return cls.get(kind) if cls is Listener else cls
        except ConfigError as exc:
            raise exc.within(f"{path}.kind" if kind is not None else path) from None

    #: event-isc's name: ``Listener.from_dict({"kind": "http", "event_name": ..., ...})``.
    from_dict = from_config

    def template(self, value: Any, path: str, names: Collection[str] = ()) -> Template:
        """Compile a template of this listener (``path`` names the option, for errors)."""
        return compile_template(value, (*BASE_NAMES, *self.template_names, *names), path)

    @classmethod
    def format(cls, value: Any, event_name: str, event_data: Any, **kwargs: Any) -> Any:
        """Render one templated value for one event, as event-isc's ``Listener.format`` did.

        For kinds that render in ``_do_notify``: a value that is not a string, or a string
        without ``{``, is returned as it is (a dict is not rendered, as in event-isc); a string
        that is one field (``"{event_data['n']}"``) renders to the value itself, type kept;
        mixed text renders to a string. The names are ``event_name``, ``event_data`` and the
        keyword arguments' names (``query_string=...``). Fields are eventisc's safe
        expressions (see :mod:`eventisc.template`), never ``eval``.

        Each template string is compiled once (with the set of keyword names it may use) and
        kept in :data:`FORMAT_TEMPLATES`, which holds at most 4,096 of them, dropping the
        oldest first. Thread-safe.

        Raises :class:`~eventisc.errors.TemplateError` naming the template, both when the
        template does not compile and when it fails for this event (a missing key): the call
        happens per event, inside ``_do_notify``, so it is that delivery's failure, reported
        by the app like any template failure (not a ``ConfigError``, which eventisc raises
        only while loading a config).
        """
        if not isinstance(value, str) or "{" not in value:
            return value
        key = (value, frozenset(kwargs)) if kwargs else value
        template = _format_template(key)
        if template is None:
            template = FORMAT_TEMPLATES.add(key, value, (*BASE_NAMES, *sorted(kwargs)))
        return template.render({"event_name": event_name, "event_data": event_data, **kwargs})

    # -- the flow ---------------------------------------------------------------------------

    def matches(self, event_name: str) -> bool:
        """Whether this listener hears ``event_name`` (the full name, prefix included)."""
        if self.event_name_regex is not None:
            return self.event_name_regex.match(event_name) is not None
        return self.event_name == event_name

    def render(self, event_name: str, event_data: Any) -> Notification:
        """Render what will be sent for this event. Pure: no I/O.

        Raises :class:`~eventisc.errors.TemplateError` when a template fails. The default
        keeps the event data for ``_do_notify``.
        """
        return Notification(self.name, self.kind, event_name, {"event_data": event_data})

    def deliver(self, notification: Notification) -> Any:
        """Send a rendered notification; the only step that does I/O.

        Returns ``False`` when the listener declined to send (not counted, not a failure);
        anything else means delivered. Raises :class:`~eventisc.errors.DeliveryError` (or any
        exception, which counts as a failure).
        """
        result = self._do_notify(notification.event_name, notification.payload["event_data"])
        return False if result is False else result

    def delivers_async(self) -> bool:
        """Whether :meth:`deliver_async` pipelines deliveries (used in background mode)."""
        return False

    def deliver_async(
        self, notification: Notification, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Start delivering and return at once; call ``done(detail, error)`` exactly once,
        from any thread, when the outcome is known. The default delivers synchronously."""
        try:
            detail = self.deliver(notification)
        except Exception as exc:
            done(None, exc)
        else:
            done(detail, None)

    def _do_notify(self, event_name: str, event_data: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _do_notify(event_name, event_data), "
            "or render() and deliver()"
        )

    def dry_run(self, notification: Notification) -> bool:
        """What dry-run mode does instead of :meth:`deliver`; True counts as notified.

        A kind that overrides ``_do_notify_dryrun(event_name, event_data)`` (event-isc's
        hook) has it called, and its truth value returned. Its ``event_data`` is the event's
        data when the kind renders with the base :meth:`render`; a kind with its own
        ``render`` keeps no event data in its notification, so it gets the rendered payload
        instead. Otherwise the payload, secrets masked, is logged at INFO on the ``eventisc``
        logger and True returned. No I/O besides logging.
        """
        hook = self._do_notify_dryrun
        if getattr(hook, "__func__", None) is not Listener._do_notify_dryrun:
            payload = notification.payload
            event_data = payload["event_data"] if self._renders_event_data() else payload
            return bool(hook(notification.event_name, event_data))
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "dry-run: listener %r would send %r",
                self.name,
                mask_payload(notification.payload),
                extra=log_extra(notification.event_name, self.name, 0, "dry-run"),
            )
        return True

    def _renders_event_data(self) -> bool:
        """Whether this kind's notifications hold ``{"event_data": ...}`` (the base render)."""
        return getattr(self.render, "__func__", None) is Listener.render

    def _do_notify_dryrun(self, event_name: str, event_data: Any) -> Any:
        """event-isc's dry-run hook: log the event (secrets masked) at INFO, return True.

        Kinds written for event-isc may override it (and call it through ``super()``);
        :meth:`dry_run` calls the override.
        """
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "EVENTISC_DRYRUN=Y _do_notify(%s, %s)",
                event_name,
                mask_payload(event_data),
                extra=log_extra(event_name, self.name, 0, "dry-run"),
            )
        return True

    def notify(self, event_name: str, event_data: Any) -> bool:
        """Match, filter, render and deliver one event; True when it was delivered.

        Kept for event-isc compatibility; :meth:`eventisc.App.trigger` is the usual way in.
        False when the event does not match, the filter rejects it or the listener declined
        (``_do_notify`` or ``deliver`` returned False); anything else it returned (None
        included, which event-isc did not count) means delivered, as in ``trigger``.

        As in event-isc, ``EVENTISC_DRYRUN`` (y/yes/true/1/on) is read at each call: when
        set, the event is rendered and :meth:`dry_run` called instead of delivering. Raises
        what the filter, the templates (:class:`~eventisc.errors.TemplateError`) or the
        delivery raise: there is no app here to catch and log it.
        """
        if not self.matches(event_name):
            return False
        if self.filter is not None and not self.filter(event_name, event_data):
            return False
        notification = self.render(event_name, event_data)
        if env_flag("EVENTISC_DRYRUN"):
            return self.dry_run(notification)
        return self.deliver(notification) is not False

    # -- lifecycle --------------------------------------------------------------------------

    def register_secrets(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        """Know each ``(field, value)`` as a secret of this listener (``<name>:<field>``):
        hidden from everything shown, left out of stored rows and put back at delivery (see
        :mod:`eventisc.secret_values`). Kinds call it with their credential fields; the app
        calls it again, without fields, once the listener has its final name."""
        known = self.__dict__.setdefault("_secret_fields", [])
        known.extend(fields)
        for field, value in known:
            register_secret(f"{self.name}:{field}", value, MIN_FIELD_LENGTH)

    def describe(self) -> str:
        """A one-line summary of where this listener sends (for ``eventisc check``)."""
        return ""

    def heartbeat(self) -> None:
        """Keep idle connections alive (kinds with long-lived connections override this)."""

    def close(self) -> None:
        """Release connections; the listener may reconnect if used again."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _build_match_options(options: dict[str, Any], path: str) -> None:
    """Turn a config's ``event_name_regex`` into a compiled ``event_name`` and its ``filter``
    mapping into a Filter, in place; raise ConfigError naming ``path``."""
    regex = options.pop("event_name_regex", None)
    if regex is not None:
        if "event_name" in options:
            raise ConfigError(
                "give exactly one of `event_name` or `event_name_regex`, not both", path
            )
        try:
            options["event_name"] = _compile_regex(regex)
        except ConfigError as exc:
            raise exc.within(f"{path}.event_name_regex") from None
    elif "event_name" not in options:
        raise ConfigError("give one of `event_name` or `event_name_regex`", path)
    if "filter" in options:
        try:
            options["filter"] = Filter.from_config(options["filter"], "filter")
        except ConfigError as exc:
            raise exc.within(path) from None


def _compile_regex(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"bad regex {pattern!r}: {exc}") from None


_listener_schemas: dict[type[Listener], dict[str, Any]] = {}


def listener_schema(cls: type[Listener]) -> dict[str, Any]:
    """The whole JSON Schema of one listener kind: the common options plus the kind's own.

    A kind whose ``schema`` is None accepts any further options.
    """
    cached = _listener_schemas.get(cls)
    if cached is not None:
        return cached
    own = cls.schema
    full: dict[str, Any] = {"type": "object"}
    if own is None:
        full["properties"] = dict(LISTENER_PROPERTIES)
        full["additionalProperties"] = True
        full["required"] = ["kind"]
    else:
        full.update({k: v for k, v in own.items() if k not in ("properties", "required")})
        full["properties"] = {**LISTENER_PROPERTIES, **own.get("properties", {})}
        full["required"] = ["kind", *own.get("required", [])]
        full["additionalProperties"] = False
    _listener_schemas[cls] = full
    return full
