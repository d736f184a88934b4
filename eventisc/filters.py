"""Filters: decide, without I/O, whether a listener handles an event.

``filter: {kind: expr, expr: "event_data['amount'] > 10"}`` keeps the events for which the
expression is true. Other kinds: subclass :class:`Filter`, set ``kind`` and implement
``__call__``; or publish the class under the ``eventisc.filters`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .errors import ConfigError, TemplateError
from .registry import Registry
from .sandbox import compile_expression, describe_error
from .schema import validate_options
from .template import BASE_NAMES

__all__ = ["ExprFilter", "Filter"]


class Filter:
    """Base class of filters. Subclasses set ``kind`` and implement ``__call__``.

    ``schema`` is the JSON Schema of the filter's own options (``{"properties": ...,
    "required": [...]}``); None accepts any options, passed as keyword arguments.

    A filter may expose its test as ``predicate``, a plain ``f(event_name, event_data)``
    returning a truth value, and ``failure(exc)``, the error to report when it raises: the app
    then calls ``predicate`` directly instead of the filter (one call layer less per event).
    """

    kind: ClassVar[str]
    schema: ClassVar[dict[str, Any] | None] = None
    registry: ClassVar[Registry[Filter]] = Registry("filter", {}, "eventisc.filters")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Filter.registry.register(cls.kind, cls)

    def __call__(self, event_name: str, event_data: Any) -> bool:
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(event_name, event_data) -> bool"
        )

    @classmethod
    def get(cls, kind: str) -> type[Filter]:
        """The filter class of ``kind`` (event-isc's ``Filter.get``); raises
        :class:`ConfigError` saying which kinds exist when there is none."""
        return cls.registry.get(kind)

    @classmethod
    def from_config(cls, definition: Mapping[str, Any], path: str = "filter") -> Filter:
        """Build a filter from its config mapping; raise ConfigError naming ``path``."""
        options = dict(definition)
        kind = options.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError("a filter needs a `kind` (such as `expr`)", path)
        try:
            filter_cls = cls.get(kind)
        except ConfigError as exc:
            raise exc.within(f"{path}.kind") from None
        validate_options(filter_cls.schema, options, path, f"{kind} filters")
        try:
            return filter_cls(**options)
        except ConfigError as exc:
            raise exc.within(path) from None
        except TypeError as exc:
            raise ConfigError(f"bad options for a {kind} filter: {exc}", path) from None

    #: event-isc's name: ``Filter.from_dict({"kind": "expr", "expr": "..."})``.
    from_dict = from_config


class ExprFilter(Filter):
    """Keeps the events for which a safe expression (see :mod:`eventisc.sandbox`) is true."""

    kind = "expr"
    schema = {"properties": {"expr": {"type": "string", "minLength": 1}}, "required": ["expr"]}

    def __init__(self, expr: str):
        self.expr = expr
        #: The compiled expression, ``f(event_name, event_data)``: what the app calls per
        #: event (a failure is then reported through :meth:`failure`).
        self.predicate = compile_expression(expr, BASE_NAMES, "expr", as_arguments=True)

    def __call__(self, event_name: str, event_data: Any) -> bool:
        try:
            return bool(self.predicate(event_name, event_data))
        except Exception as exc:
            raise self.failure(exc) from exc

    def failure(self, exc: Exception) -> TemplateError:
        """The error reported when the expression raised ``exc`` for an event."""
        return TemplateError(f"filter failed: {describe_error(exc)}", template=self.expr)

    def __repr__(self) -> str:
        return f"ExprFilter({self.expr!r})"
