"""Validating against a JSON Schema, with errors that name the offending value.

The schemas themselves live beside what they describe: a kind's options in its ``schema``
(:class:`eventisc.Listener`), the options every listener takes in
:mod:`eventisc.listeners.base`, the settings in :mod:`eventisc.settings`, the top level of a
config in :mod:`eventisc.config` (which also assembles the whole document, ``eventisc
schema``). Numbers are finite here: YAML's ``.inf`` and ``.nan`` are refused.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ._fork import on_fork
from .errors import ConfigError
from .masking import mask_url

__all__ = ["format_path", "validate", "validate_options"]

_validators: dict[int, Any] = {}
_validators_lock = threading.Lock()


@on_fork
def _new_lock() -> None:
    global _validators_lock
    _validators_lock = threading.Lock()


def _validator(schema: Mapping[str, Any]) -> Any:
    key = id(schema)
    validator = _validators.get(key)
    if validator is None:
        validator = _validator_class()(schema)
        with _validators_lock:
            _validators[key] = validator
    return validator


_classes: list[Any] = []


def _validator_class() -> Any:
    """Draft 2020-12, where a ``number`` is finite: YAML's ``.inf`` and ``.nan`` are no
    durations, and eventisc never waits forever."""
    if not _classes:
        import jsonschema  # imported on first load only: it is slow to import

        base = jsonschema.Draft202012Validator
        checker = base.TYPE_CHECKER.redefine(
            "number", lambda checker, value: _is_number(value) and math.isfinite(value)
        )
        _classes.append(jsonschema.validators.extend(base, type_checker=checker))
    return _classes[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def format_path(parts: Iterable[Any], prefix: str = "") -> str:
    """``listeners``, 1, ``url`` -> ``listeners[1].url``."""
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def validate(
    instance: Any,
    schema: Mapping[str, Any],
    path: str = "",
    what: str = "the config",
    source: str | None = None,
) -> None:
    """Validate ``instance``; raise one :class:`ConfigError` listing every problem, in the
    order of the instance's keys (the file's order), each with its path.

    ``path`` locates ``instance`` in the config; ``what`` names it in messages about its own
    keys (``http listeners take: ...``; a nested mapping is named by its key: ``retry takes:
    ...``). An unknown option comes with the closest known one (``did you mean 'url'?``),
    and then the option it stands for is not also reported missing.
    """
    from jsonschema.exceptions import best_match

    problems: list[_Problem] = []
    for error in _validator(schema).iter_errors(instance):
        problems.extend(_problems(best_match([error]), instance, what))
    if not problems:
        return
    suggested = {(p.parts, p.suggestion) for p in problems if p.suggestion}
    kept = [p for p in problems if not _implied(p, suggested)]
    kept.sort(key=lambda p: p.position)
    unique = dict.fromkeys((format_path(p.parts, path), p.message) for p in kept)
    raise ConfigError.combine([ConfigError(m, w or None, source) for w, m in unique])


class _Problem:
    """One problem found in an instance: where (``parts`` of its path), its position in the
    instance (for the file's order), its message, and the known option an unknown one
    looks like."""

    __slots__ = ("parts", "position", "message", "suggestion", "missing")

    def __init__(
        self,
        parts: tuple[Any, ...],
        position: tuple[float, ...],
        message: str,
        suggestion: str | None = None,
        missing: str | None = None,
    ) -> None:
        self.parts = parts
        self.position = position
        self.message = message
        self.suggestion = suggestion
        self.missing = missing


def _problems(error: Any, instance: Any, what: str) -> list[_Problem]:
    parts = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        return _unknown_options(error, instance, parts, what)
    if _not_finite(error.instance):
        message = f"must be a finite number, not {error.instance!r}"
    else:
        message = mask_url(error.message)  # it may quote the value: a URL with its password
    missing = None
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = next(
            (p for p in error.validator_value if p not in error.instance and repr(p) in message),
            None,
        )
    return [_Problem(parts, _position(instance, parts), message, missing=missing)]


def _unknown_options(
    error: Any, instance: Any, parts: tuple[Any, ...], what: str
) -> list[_Problem]:
    allowed = sorted(error.schema.get("properties", {}))
    named = [p for p in parts if isinstance(p, str)]
    takes = f"{named[-1]} takes" if named else f"{what} take"
    found = []
    for key in error.instance:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"unknown option {str(key)!r}{hint} ({takes}: {', '.join(allowed)})"
        where = (*parts, key)
        suggestion = close[0] if close else None
        found.append(_Problem(where, _position(instance, where), message, suggestion))
    return found


def _implied(problem: _Problem, suggested: set[tuple[tuple[Any, ...], str]]) -> bool:
    """Whether ``problem`` is a missing option that an unknown one beside it stands for
    (``urll`` for ``url``): the unknown option's message says it already."""
    if problem.missing is None:
        return False
    return (*problem.parts, problem.missing) in {(*at[:-1], name) for at, name in suggested}


def _position(instance: Any, parts: Iterable[Any]) -> tuple[float, ...]:
    """Where the value at ``parts`` is in ``instance``, as a sortable tuple: key and item
    indexes, in the order the file wrote them. A problem with a whole mapping or list (a
    missing option) comes after the problems inside it."""
    position: list[float] = []
    node = instance
    for part in parts:
        if isinstance(node, Mapping):
            keys = list(node)
            position.append(keys.index(part) if part in node else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            position.append(part)
            node = node[part]
        else:
            position.append(math.inf)
            node = None
    if isinstance(node, (Mapping, list)):
        position.append(math.inf)
    return tuple(position)


def validate_options(
    schema: Mapping[str, Any] | None, options: Mapping[str, Any], path: str, what: str
) -> None:
    """Validate a kind's own options against its partial schema (None accepts anything)."""
    if schema is None:
        return
    full = _options_schema(schema)
    validate(options, full, path, what)


_options_schemas: dict[int, dict[str, Any]] = {}


def _options_schema(partial: Mapping[str, Any]) -> dict[str, Any]:
    full = _options_schemas.get(id(partial))
    if full is None:
        full = {"type": "object", "additionalProperties": False, **partial}
        full.setdefault("properties", {})
        _options_schemas[id(partial)] = full
    return full
