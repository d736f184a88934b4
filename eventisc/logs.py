"""What eventisc logs about deliveries: the ``extra`` fields of every record, and throttling.

Every record about a delivery carries the same ``extra`` fields (:func:`log_extra`), so a JSON
formatter picks them up; something that happens by the thousand is logged at most once per
period with a count (:class:`Throttle`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ._fork import register

__all__ = ["Throttle", "log_extra"]


def log_extra(
    event_name: str, listener: str, attempt: int, outcome: str, latency: float | None = None
) -> dict[str, Any]:
    """The ``extra`` fields of every log record about a delivery (for JSON log formatters)."""
    return {
        "event_name": event_name,
        "listener": listener,
        "attempt": attempt,
        "outcome": outcome,
        "latency_ms": None if latency is None else round(latency * 1000, 3),
    }


class Throttle:
    """Says when something that happens often should be logged: at most once per
    ``period`` seconds, with how many times it happened meanwhile."""

    def __init__(self, period: float):
        self.period = period
        self._last = -period
        self._skipped = 0
        self._lock = threading.Lock()
        register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def ready(self) -> int | None:
        """The number of skipped occurrences when it is time to log, else None."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.period:
                self._skipped += 1
                return None
            self._last = now
            skipped, self._skipped = self._skipped, 0
            return skipped
