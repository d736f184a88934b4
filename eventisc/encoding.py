"""JSON encoding of event data, shared by every kind that sends JSON.

Bodies are strict JSON (RFC 8259): NaN and ±Infinity, which Python's :mod:`json` writes by
default and strict receivers refuse, are an error at render, as is text that cannot be sent
as UTF-8 (a lone surrogate). Every error names where in the value the problem is.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import TemplateError

__all__ = ["check_text", "dumps", "encode"]


def _default(value: Any) -> Any:
    # The same conversions as kombu's JSON serializer, so HTTP, RabbitMQ and Celery agree.
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(
        f"{type(value).__name__} is not JSON serializable; render it with a template "
        "(for example `{event_data['user'].id}`) instead of sending the object"
    )


def _encoder(allow_nan: bool) -> Any:
    # The C encoder built once, without the circular-reference bookkeeping JSONEncoder.encode
    # redoes per call (half the cost of a small body); a cycle then ends in RecursionError.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None
    return make(None, _default, json.encoder.encode_basestring, None, ":", ",", False, False,
                allow_nan)  # fmt: skip


_STRICT = _encoder(allow_nan=False)
_LENIENT = _encoder(allow_nan=True)
_PY_STRICT = json.JSONEncoder(
    default=_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)
_PY_LENIENT = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any, *, strict: bool = True) -> str:
    """Encode ``value`` as compact JSON; datetimes, dates and times as ISO 8601, Decimals and
    UUIDs as strings, sets as lists.

    Raises ``TypeError`` naming any other object, and ``ValueError`` saying where the value
    holds NaN or Infinity (``strict``, the default; ``strict=False`` writes them as Python's
    :mod:`json` does, for eventisc's own storage), contains itself, or is nested too deeply.
    """
    fast = _STRICT if strict else _LENIENT
    if fast is None or isinstance(value, str):
        return (_PY_STRICT if strict else _PY_LENIENT).encode(value)
    try:
        return "".join(fast(value, 0))
    except (ValueError, RecursionError) as exc:
        problem = find_problem(value, strict)
        raise ValueError(problem or str(exc)) from None


def encode(value: Any, what: str = "the body") -> str:
    """Like :func:`dumps`, raising :class:`~eventisc.errors.TemplateError` that names ``what``
    and where in it the problem is; the text is also checked to be sendable as UTF-8."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"cannot encode {what} as JSON: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problem = find_problem(value, strict=True, text=True)
            raise TemplateError(f"cannot encode {what}: {problem}") from None
    return text


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
    """A marker on the walk's stack: the container with this id is done."""

    __slots__ = ("ident",)

    def __init__(self, ident: int):
        self.ident = ident


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


def find_problem(value: Any, strict: bool = True, text: bool = False) -> str | None:
    """Where ``value`` cannot be encoded: the first NaN or Infinity (``strict``), text that is
    not UTF-8 (``text``, keys included), a container that contains itself, or the depth when it
    is nested too deeply; None if none of these. Iterative: it works on values too deep for
    recursion.
    """
    stack: list[Any] = [(value, "", 1)]
    active: set[int] = set()  # the containers on the path being walked
    deepest = (0, "")
    while stack:
        item = stack.pop()
        if isinstance(item, _Leave):
            active.discard(item.ident)
            continue
        obj, path, depth = item
        where = f"the value at {path}" if path else "the value"
        found = _leaf_problem(obj, where, strict, text)
        children = _children(obj) if found is None else None
        if found is not None or children is None:
            if found is not None:
                return found
            continue
        if id(obj) in active:
            return f"{where} contains itself (a circular reference)"
        deepest = max(deepest, (depth, path))
        active.add(id(obj))
        stack.append(_Leave(id(obj)))
        for key, segment, child in reversed(children):
            found = _leaf_problem(key, f"a key of {where}", False, text)
            if found is not None:
                return found
            stack.append((child, path + segment, depth + 1))
    return _too_deep(*deepest)


def _too_deep(depth: int, path: str) -> str | None:
    if depth <= 100:
        return None
    shown = path if len(path) <= 60 else path[:57] + "..."
    return f"the value is nested too deeply ({depth} levels, at {shown})"
