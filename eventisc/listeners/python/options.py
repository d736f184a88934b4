"""The ``python`` kind's options: their JSON Schema (:data:`PYTHON_SCHEMA`) and the import and
checks of the ``callable`` when the config is loaded."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ...encoding import load_default
from ...errors import ConfigError

__all__ = ["PYTHON_SCHEMA", "callable_name", "load_callable"]

#: JSON Schema of the python kind's own options.
PYTHON_SCHEMA: dict[str, Any] = {
    "properties": {
        "callable": {
            "description": 'The function to call, `"package.module:function"` (a dotted '
            "attribute after the colon, `module:Class.method`, works too), imported when the "
            "config is loaded: a module that cannot be imported, a missing attribute, or "
            "something that cannot be called with two positional arguments is an error at "
            "load. Called as `function(event_name, event_data)`, or `function(event_name, "
            "payload)` with `data`. From Python, the function itself.",
        },
        "data": {
            "description": "A template of what the function gets instead of the event data "
            '(`{user_id: "{event_data[user].id}"}`), rendered for each event. Default: the '
            "event data itself, as given to `trigger`.",
        },
    },
    "required": ["callable"],
}


def callable_name(func: Callable[..., Any]) -> str:
    """``package.module:qualname`` of a function (its ``repr`` when it has no such name)."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return repr(func)


def load_callable(spec: Any, path: str = "callable") -> Callable[..., Any]:
    """The function ``spec`` names (``"package.module:function"``), imported now, or ``spec``
    itself when it is callable; checked to take ``(event_name, payload)``. A ConfigError naming
    ``path`` when it cannot be imported, is missing, cannot be called that way or is a
    coroutine function."""
    if not (callable(spec) or isinstance(spec, str)):
        raise ConfigError(
            f'must name a function as "package.module:function", not {type(spec).__name__}', path
        )
    func = load_default(spec, path)
    shown = spec if isinstance(spec, str) else callable_name(func)
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    ):
        raise ConfigError(
            f"{shown} is a coroutine function: listeners are called from threads, not an event "
            "loop; give a plain function (it may run the coroutine with asyncio.run)",
            path,
        )
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: it is called as it is
        return func
    try:
        signature.bind("event_name", {})
    except TypeError as exc:
        raise ConfigError(
            f"{shown} cannot be called as function(event_name, event_data): {exc}",
            path,
        ) from None
    return func
