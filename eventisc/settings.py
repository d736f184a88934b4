"""Checking the values of settings: durations and counts, as the schema checks a file.

The JSON Schema checks what a config file says; these check the same rules for values given
from Python (``RetryPolicy(max_backoff=...)``, ``App(heartbeat=...)``, a listener's
``timeout``), so both ways in fail the same way, at load. A duration is a finite number of
seconds: ``nan`` passes every comparison and would never time out, and ``inf`` or a huge number
overflows the timed waits of threads and sockets; eventisc never waits forever.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from .errors import ConfigError

__all__ = ["LONGEST", "check_count", "check_seconds", "count_option", "seconds_option"]

#: The longest wait a duration may ask for: what Python's timed waits accept (~292 years).
LONGEST = threading.TIMEOUT_MAX


def check_seconds(name: str, value: Any, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """``value`` as seconds: a finite number > 0 (>= 0 with ``zero``) and at most ``maximum``;
    else a :class:`ConfigError` at ``name`` (``ConfigError.within`` puts it under its parent)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
        and value <= maximum
    )
    if not ok:
        bound = ">= 0" if zero else "above 0"
        raise ConfigError(
            f"must be a finite number of seconds {bound} (at most {maximum:.0f}), not {value!r}",
            name,
        )
    return float(value)


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as a whole number >= ``minimum`` (a bool, a float or a numeric string is not
    one); else a :class:`ConfigError` at ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer of at least {minimum}, not {value!r}", name)
    return value


def seconds_option(value: Any, path: str, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """:func:`check_seconds` for an option at ``path`` (``requests_kwargs.timeout``)."""
    try:
        return check_seconds(path.rsplit(".", 1)[-1], value, zero=zero, maximum=maximum)
    except ConfigError as exc:
        raise ConfigError(exc.message, path) from None


def count_option(value: Any, path: str, minimum: int = 0) -> int:
    """:func:`check_count` for an option at ``path``."""
    try:
        return check_count(path.rsplit(".", 1)[-1], value, minimum)
    except ConfigError as exc:
        raise ConfigError(exc.message, path) from None
