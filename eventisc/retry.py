"""Retry policies: which failures are worth another attempt, and how long to wait first.

One :class:`RetryPolicy` value serves every kind. ``retry_on`` names classes of failure:

==============  =================================================================
``connect``     the receiver or broker could not be reached, or the link broke
``timeout``     no answer in time
``5xx``         an HTTP 5xx status
``4xx``         an HTTP 4xx status (``429`` and single codes can be named alone)
``429``, ...    one HTTP status code
``rejected``    a broker refusal (AMQP nack, unroutable, access refused)
``error``       any other failure of a delivery (an exception of a custom kind)
==============  =================================================================

Template and encoding errors are never retried: the same event fails the same way.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    ConfigError,
    ConnectError,
    DeliveryTimeout,
    HTTPStatusError,
    Rejected,
    TemplateError,
)
from .settings import check_count, check_seconds

__all__ = ["DEFAULT_BACKGROUND", "DEFAULT_SYNC", "RETRY_SCHEMA", "RetryPolicy", "failure_class"]

_NAMED = frozenset({"connect", "timeout", "5xx", "4xx", "rejected", "error"})


def failure_class(exc: BaseException) -> str | None:
    """The ``retry_on`` name of a failure; None for one never retried (a template error)."""
    if isinstance(exc, TemplateError):
        return None
    if isinstance(exc, HTTPStatusError):
        return str(exc.status)
    if isinstance(exc, (ConnectError, ConnectionError)):
        return "connect"
    if isinstance(exc, (DeliveryTimeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, Rejected):
        return "rejected"
    return "error"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How many times to try a delivery and how long to wait between attempts.

    Attempt ``n`` failing waits ``backoff_factor * 2 ** (n - 1)`` seconds, capped at
    ``max_backoff`` and spread by ``±jitter`` (a fraction) before attempt ``n + 1``. An HTTP
    ``Retry-After`` replaces that wait, capped at ``max_backoff`` too. ``max_attempts`` counts
    the first attempt: 1 means never retry.
    """

    max_attempts: int = 3
    backoff_factor: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.1
    retry_on: frozenset[str] = field(default=frozenset({"connect", "timeout", "5xx", "429"}))

    def __post_init__(self) -> None:
        check_count("max_attempts", self.max_attempts, 1)
        for name in ("backoff_factor", "max_backoff"):
            check_seconds(name, getattr(self, name), zero=True)
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 1):
            raise ConfigError(f"must be between 0 and 1, not {self.jitter!r}", "jitter")
        names = frozenset(str(n).lower() for n in self.retry_on)
        for name in names:
            if name not in _NAMED and not (name.isdigit() and 100 <= int(name) <= 599):
                raise ConfigError(
                    f"unknown failure {name!r}; use {', '.join(sorted(_NAMED))} or HTTP status "
                    "codes",
                    "retry_on",
                )
        object.__setattr__(self, "retry_on", names)

    @classmethod
    def from_config(
        cls, value: Mapping[str, Any] | RetryPolicy, path: str = "retry"
    ) -> RetryPolicy:
        """Build a policy from its config mapping (or return a policy as it is)."""
        if isinstance(value, RetryPolicy):
            return value
        options = dict(value)
        if "retry_on" in options:
            options["retry_on"] = frozenset(str(v) for v in options["retry_on"])
        try:
            return cls(**options)
        except ConfigError as exc:
            raise exc.within(path) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), path) from None

    def retries(self, exc: BaseException) -> bool:
        """Whether this failure is worth another attempt under this policy."""
        name = failure_class(exc)
        if name is None:
            return False
        if name in self.retry_on:
            return True
        return name.isdigit() and f"{name[0]}xx" in self.retry_on

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based) failing with ``exc`` gets another one."""
        return attempt < self.max_attempts and self.retries(exc)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed with ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.max_backoff))
        wait = min(self.backoff_factor * 2 ** (attempt - 1), self.max_backoff)
        if self.jitter:
            wait *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, wait)

    def to_config(self) -> dict[str, Any]:
        """The policy as config keys (for ``eventisc check``)."""
        return {
            "max_attempts": self.max_attempts,
            "backoff_factor": self.backoff_factor,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "retry_on": sorted(self.retry_on),
        }


#: The default of synchronous delivery: one attempt, as in event-isc (retrying inline would
#: hold the caller; configure ``retry`` to opt in).
DEFAULT_SYNC = RetryPolicy(max_attempts=1)
#: The default of background delivery: five attempts over about eight seconds.
DEFAULT_BACKGROUND = RetryPolicy(max_attempts=5)

#: JSON Schema of a ``retry`` mapping.
RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Retry policy: max_attempts, backoff_factor, max_backoff, jitter, retry_on.",
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "description": "Attempts in all."},
        "backoff_factor": {"type": "number", "minimum": 0, "description": "First wait (s)."},
        "max_backoff": {"type": "number", "minimum": 0, "description": "Longest wait (s)."},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1},
        "retry_on": {
            "type": "array",
            "items": {"type": ["string", "integer"]},
            "description": "connect, timeout, 5xx, 4xx, rejected, error, or HTTP status codes.",
        },
    },
}
