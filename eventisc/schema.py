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
    """Validate ``instance``; raise :class:`ConfigError` for the most relevant problem.

    ``path`` locates ``instance`` in the config; ``what`` names it in messages
    (``http listeners take: ...``).
    """
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(instance))
    if error is None:
        return
    where = format_path(error.absolute_path, path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(str(k) for k in error.instance if k not in allowed)[0]
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"unknown option {unknown!r}{hint} ({what} take: {', '.join(allowed)})"
        where = format_path([unknown], where)
    elif _not_finite(error.instance):
        message = f"must be a finite number, not {error.instance!r}"
    else:
        message = mask_url(error.message)  # it may quote the value: a URL with its password
    raise ConfigError(message, where or None, source)


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
