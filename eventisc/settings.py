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

__all__ = [
    "LONGEST",
    "BadSetting",
    "check_count",
    "check_seconds",
    "config_error",
    "count_option",
    "seconds_option",
]

#: The longest wait a duration may ask for: what Python's timed waits accept (~292 years).
LONGEST = threading.TIMEOUT_MAX


class BadSetting(ValueError):
    """A setting's value is wrong: ``setting`` names it (the config key), ``problem`` says
    what is wrong (``must be ..., not ...``)."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting} {problem}")


def config_error(exc: Exception, path: str) -> ConfigError:
    """The ConfigError for a value class's ``exc``, at ``path.<setting>`` when the setting is
    known (a :class:`BadSetting`), else at ``path``."""
    if isinstance(exc, BadSetting):
        return ConfigError(exc.problem, f"{path}.{exc.setting}" if path else exc.setting)
    return ConfigError(str(exc), path)


def check_seconds(name: str, value: Any, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """``value`` as seconds: a finite number > 0 (>= 0 with ``zero``) and at most ``maximum``;
    else :class:`BadSetting` naming ``name``."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
        and value <= maximum
    )
    if not ok:
        bound = ">= 0" if zero else "above 0"
        raise BadSetting(
            name,
            f"must be a finite number of seconds {bound} (at most {maximum:.0f}), not {value!r}",
        )
    return float(value)


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as a whole number >= ``minimum`` (a bool, a float or a numeric string is not
    one); else :class:`BadSetting` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadSetting(name, f"must be an integer of at least {minimum}, not {value!r}")
    return value


def seconds_option(value: Any, path: str, *, zero: bool = False, maximum: float = LONGEST) -> float:
    """:func:`check_seconds` for a listener's option: a :class:`ConfigError` at ``path``."""
    try:
        return check_seconds(path.rsplit(".", 1)[-1], value, zero=zero, maximum=maximum)
    except BadSetting as exc:
        raise ConfigError(exc.problem, path) from None


def count_option(value: Any, path: str, minimum: int = 0) -> int:
    """:func:`check_count` for a listener's option: a :class:`ConfigError` at ``path``."""
    try:
        return check_count(path.rsplit(".", 1)[-1], value, minimum)
    except BadSetting as exc:
        raise ConfigError(exc.problem, path) from None
