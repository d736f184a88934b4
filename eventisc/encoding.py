"""JSON encoding of event data, shared by every kind that sends JSON.

Bodies are strict JSON (RFC 8259): NaN and ±Infinity, which Python's :mod:`json` writes by
default and strict receivers refuse, are an error at render, as is text that cannot be sent
as UTF-8 (a lone surrogate). Every error names where in the value the problem is.

Objects JSON cannot hold are converted (:func:`convert`): datetimes, dates and times to ISO
8601, Decimals and UUIDs to strings, sets to sorted lists, other mappings to dicts,
dataclasses to dicts of their fields, and objects with a ``__json__()`` or ``to_dict()`` method
to what it returns. A :class:`JSONEncoding` made with a ``default`` (the ``json_default``
option) asks it first, as :func:`json.dumps` does.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import importlib
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError, TemplateError

__all__ = ["BUILTIN", "KOMBU_TYPES", "JSONEncoding", "check_text", "convert", "dumps", "encode"]

_ISO = (datetime.datetime, datetime.date, datetime.time)
_NATIVE = (str, int, float, bool, type(None), dict, list, tuple)

#: What kombu's JSON serializer writes itself, tagged, and a Celery worker reads back as the
#: same type: task arguments keep these (:meth:`JSONEncoding.converter`).
KOMBU_TYPES: tuple[type, ...] = (*_ISO, decimal.Decimal, uuid.UUID, bytes)

#: The methods an object may have to say what it is in JSON, asked in this order.
METHODS = ("__json__", "to_dict")


def _sorted(value: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(value)  # the same body for the same set, whatever the hash seed
    except TypeError:
        return list(value)


_NONE = object()


def _by_method(value: Any) -> Any:
    """What the object's ``__json__()`` or ``to_dict()`` returns; ``_NONE`` without them."""
    if not isinstance(value, type):  # a class's unbound method is no conversion
        for name in METHODS:
            method = getattr(value, name, None)
            if callable(method):
                return method()
    return _NONE


def convert(value: Any) -> Any:
    """What an object JSON cannot hold is written as (see the module docstring); raises
    ``TypeError`` naming its type when it is none of those."""
    # The datetime, Decimal and UUID forms are those of kombu's JSON serializer.
    if isinstance(value, _ISO):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return _sorted(value)
    converted = _by_method(value)  # the object's own say comes before the generic forms
    if converted is not _NONE:
        return converted
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Shallow: the encoder converts the fields' own values in turn.
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(
        f"{type(value).__name__} is not JSON serializable: give it a `__json__()` or "
        "`to_dict()` method, name a `json_default` function, or render it with a template "
        "(for example `{event_data['user'].id}`) instead of sending the object"
    )


def _chain(default: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    """``default`` first; its TypeError passes the value on to :func:`convert`."""

    def chained(value: Any) -> Any:
        try:
            return default(value)
        except TypeError:
            try:
                return convert(value)
            except TypeError as exc:
                raise TypeError(f"{exc} (json_default {name} passed it on)") from None
        except Exception as exc:
            raise TypeError(
                f"json_default {name} failed on a {type(value).__name__}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    return chained


def _encoder(default: Callable[[Any], Any], allow_nan: bool) -> Any:
    # The C encoder built once, without the circular-reference bookkeeping JSONEncoder.encode
    # redoes per call (half the cost of a small body); a cycle then ends in RecursionError.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None
    return make(None, default, json.encoder.encode_basestring, None, ":", ",", False, False,
                allow_nan)  # fmt: skip


def load_default(spec: Any, path: str = "json_default") -> Callable[[Any], Any]:
    """The function ``spec`` names (``"package.module:function"``), imported now, or ``spec``
    itself when it is callable; a :class:`ConfigError` naming ``path`` when it is neither."""
    if callable(spec):
        return spec
    module_name, colon, attribute = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not (colon and module_name and attribute):
        raise ConfigError(f'must name a function as "package.module:function", not {spec!r}', path)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise ConfigError(
            f"cannot import {module_name!r} for {spec!r} ({type(exc).__name__}: {exc})", path
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r} ({spec!r})", path)
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{spec!r} is a {type(target).__name__}, not a function", path)
    result: Callable[[Any], Any] = target
    return result


class JSONEncoding:
    """How one listener writes JSON: :func:`convert`, after ``default`` when one is given.

    ``JSONEncoding("myapp.encoding:to_json")`` imports the function now (a
    :class:`ConfigError` naming ``path`` when it cannot); a callable is taken as it is.
    ``default(obj)`` returns something JSON can hold, or raises ``TypeError`` to leave
    ``obj`` to the built-in conversions. Immutable; safe to share between threads.
    """

    __slots__ = (
        "default", "spec", "_fallback", "_strict", "_lenient", "_py_strict", "_py",
        "_tasks",
    )  # fmt: skip

    def __init__(self, default: Any = None, path: str = "json_default"):
        #: What the option said (a "module:function" string or a callable), or None.
        self.spec = default
        #: The function asked first, or None.
        self.default = None if default is None else load_default(default, path)
        name = default if isinstance(default, str) else getattr(default, "__name__", "function")
        self._fallback = convert if self.default is None else _chain(self.default, name)
        self._strict = _encoder(self._fallback, allow_nan=False)
        self._lenient = _encoder(self._fallback, allow_nan=True)
        self._py_strict = json.JSONEncoder(
            default=self._fallback, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        self._py = json.JSONEncoder(
            default=self._fallback, ensure_ascii=False, separators=(",", ":")
        )
        #: ``f(value, what)`` for a task's arguments, by ``leave`` (see :meth:`_converter`).
        self._tasks = {leave: self._converter(KOMBU_TYPES, leave) for leave in (False, True)}

    def dumps(self, value: Any, *, strict: bool = True) -> str:
        """Encode ``value`` as compact JSON, converting objects JSON cannot hold.

        Raises ``TypeError`` saying where an object nothing converts is, and ``ValueError``
        saying where the value holds NaN or Infinity (``strict``, the default;
        ``strict=False`` writes them as Python's :mod:`json` does, for eventisc's own
        storage), contains itself, or is nested too deeply.
        """
        fast = self._strict if strict else self._lenient
        if fast is None or isinstance(value, str):
            return (self._py_strict if strict else self._py).encode(value)
        try:
            return "".join(fast(value, 0))
        except TypeError as exc:
            raise TypeError(find_problem(value, strict, default=self._fallback) or exc) from None
        except (ValueError, RecursionError) as exc:
            problem = find_problem(value, strict, default=self._fallback)
            raise ValueError(problem or str(exc)) from None

    def encode(self, value: Any, what: str = "the body") -> str:
        """Like :meth:`dumps`, raising :class:`~eventisc.errors.TemplateError` that names
        ``what`` and where in it the problem is; the text is also checked to be sendable as
        UTF-8."""
        try:
            text = self.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"cannot encode {what} as JSON: {exc}") from None
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problem = find_problem(value, strict=True, text=True, default=self._fallback)
                raise TemplateError(f"cannot encode {what}: {problem}") from None
        return text

    def task_arguments(self, args: Any, kwargs: Any, *, leave: bool) -> tuple[Any, Any]:
        """A Celery task's ``args`` and ``kwargs`` for kombu's JSON serializer: what it cannot
        write converted, :data:`KOMBU_TYPES` kept (see :meth:`_converter`); the same objects
        when nothing needs converting."""
        both = [args, kwargs]
        converted = self._tasks[leave](both, "the task's arguments ([args, kwargs])")
        return (args, kwargs) if converted is both else (converted[0], converted[1])

    def _converter(self, keep: tuple[type, ...], leave: bool) -> Callable[[Any, str], Any]:
        """``f(value, what)``: ``value`` with the objects JSON cannot hold converted, except
        instances of ``keep`` (a serializer that handles them itself); ``value`` itself when
        nothing needs converting. An object nothing converts raises TemplateError as
        :meth:`encode` does, or with ``leave`` is left as it is (for a serializer that may
        not be JSON)."""

        def keep_or_raise(obj: Any) -> None:
            if isinstance(obj, keep):
                return None
            raise TypeError

        probe = _encoder(keep_or_raise, allow_nan=True)
        fallback = _leaving(self._fallback) if leave else self._fallback

        def plain(value: Any, what: str) -> Any:
            try:
                if probe is not None:
                    probe(value, 0)  # one C pass: the common case needs nothing converted
                    return value
            except (TypeError, ValueError, RecursionError):
                pass
            try:
                return _convert_tree(value, fallback, keep, 0)
            except Exception:  # say what and where, as the encoder would
                self.encode(value, what)
                raise TemplateError(f"cannot encode {what} as JSON") from None

        return plain

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONEncoding) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec) if isinstance(self.spec, str) else id(self.spec)

    def __repr__(self) -> str:
        return f"JSONEncoding({self.spec!r})"


class _Left:
    """What :func:`_leaving` returns for an object nothing converts: the object itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _leaving(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def leave(value: Any) -> Any:
        try:
            return fallback(value)
        except TypeError:
            return _Left(value)

    return leave


def _convert_tree(
    value: Any, fallback: Callable[[Any], Any], keep: tuple[type, ...], n: int
) -> Any:
    if n > _MAX_CONVERSIONS:
        raise RecursionError
    if isinstance(value, dict):
        return {k: _convert_tree(v, fallback, keep, n) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert_tree(v, fallback, keep, n) for v in value]
    if isinstance(value, _NATIVE) or isinstance(value, keep):
        return value
    converted = fallback(value)
    if isinstance(converted, _Left):
        return converted.value
    return _convert_tree(converted, fallback, keep, n + 1)


#: The JSON encoding without a ``json_default``.
BUILTIN = JSONEncoding()

#: :meth:`JSONEncoding.dumps` of :data:`BUILTIN`.
dumps = BUILTIN.dumps

#: :meth:`JSONEncoding.encode` of :data:`BUILTIN`.
encode = BUILTIN.encode

#: Conversions in a row (an object converting to objects that convert, ...) before giving up.
_MAX_CONVERSIONS = 1_000


def check_text(text: str, what: str) -> str:
    """Return ``text`` if it can be sent as UTF-8; else raise TemplateError naming ``what``."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TemplateError(f"{what} {_unencodable(text, exc)}") from None
    return text


# -- saying where a value cannot be encoded (only after encoding failed) -----------------------


class _Leave:
    """A marker on the walk's stack: the container with this id is done. It holds the
    container, so that no other object (one a conversion made) takes its id meanwhile."""

    __slots__ = ("ident", "held")

    def __init__(self, held: Any):
        self.ident = id(held)
        self.held = held


def _children(value: Any) -> list[tuple[Any, str, Any]] | None:
    """``(key, path segment, item)`` of a container's items; None for anything else."""
    if isinstance(value, Mapping):
        return [(k, f"[{k!r}]", v) for k, v in value.items()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [(None, f"[{i}]", v) for i, v in enumerate(value)]
    return None


def _unencodable(text: str, exc: UnicodeEncodeError) -> str:
    char = text[exc.start]
    return (
        f"holds {char!r} at position {exc.start}, which cannot be encoded as UTF-8 (a lone "
        "surrogate, as from a bad decode); fix the data or replace it"
    )


def _leaf_problem(value: Any, where: str, strict: bool, text: bool) -> str | None:
    if strict and isinstance(value, float) and not math.isfinite(value):
        name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return (
            f"{where} is {name}, which JSON cannot hold; send null, a string or a finite "
            "number instead"
        )
    if text and isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{where} {_unencodable(value, exc)}"
    return None


def find_problem(
    value: Any,
    strict: bool = True,
    text: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> str | None:
    """Where ``value`` cannot be encoded: the first NaN or Infinity (``strict``), text that is
    not UTF-8 (``text``, keys included), a container that contains itself, or the depth when it
    is nested too deeply; None if none of these. With ``default`` (the encoder's),
    also an object it cannot convert, or a key JSON cannot hold, and the objects it converts
    are walked as what they convert to. Iterative: it works on values too deep for recursion.
    """
    stack: list[Any] = [(value, "", 1, 0)]
    active: set[int] = set()  # the containers (and converted objects) on the path walked
    deepest = (0, "")
    while stack:
        item = stack.pop()
        if isinstance(item, _Leave):
            active.discard(item.ident)
            continue
        obj, path, depth, conversions = item
        where = f"the value at {path}" if path else "the value"
        found = _leaf_problem(obj, where, strict, text)
        children = _children(obj) if found is None else None
        if found is None and children is None and default is not None:
            found = _conversion(obj, where, default, conversions, active, stack, item)
        if found is not None or children is None:
            if found is not None:
                return found
            continue
        if id(obj) in active:
            return f"{where} contains itself (a circular reference)"
        deepest = max(deepest, (depth, path))
        active.add(id(obj))
        stack.append(_Leave(obj))
        for key, segment, child in reversed(children):
            found = _key_problem(key, f"a key of {where}", text, default is not None)
            if found is not None:
                return found
            stack.append((child, path + segment, depth + 1, conversions))
    return _too_deep(*deepest)


_JSON_KEYS = (str, int, float, bool, type(None))
_JSON_LEAVES = (str, int, float, bool, type(None))


def _key_problem(key: Any, where: str, text: bool, typed: bool) -> str | None:
    if typed and key is not None and not isinstance(key, _JSON_KEYS):
        return f"{where} is a {type(key).__name__}, which JSON cannot hold as a key"
    return _leaf_problem(key, where, False, text)


def _conversion(
    obj: Any,
    where: str,
    convert: Callable[[Any], Any],
    conversions: int,
    active: set[int],
    stack: list[Any],
    item: tuple[Any, str, int, int],
) -> str | None:
    """Convert a leaf JSON cannot hold and push what it converts to; or say why not."""
    if isinstance(obj, _JSON_LEAVES):
        return None
    if id(obj) in active:
        return f"{where} contains itself (a circular reference)"
    if conversions >= _MAX_CONVERSIONS:
        path = item[1] if len(item[1]) <= 60 else item[1][:57] + "..."
        return (
            f"the value is nested too deeply ({conversions} objects converted in a row, at {path})"
        )
    try:
        converted = convert(obj)
    except Exception as exc:
        return f"{where}: {exc}"
    active.add(id(obj))
    stack.append(_Leave(obj))
    stack.append((converted, item[1], item[2], conversions + 1))
    return None


def _too_deep(depth: int, path: str) -> str | None:
    if depth <= 100:
        return None
    shown = path if len(path) <= 60 else path[:57] + "..."
    return f"the value is nested too deeply ({depth} levels, at {shown})"
