"""The circuit breaker layer: stop knocking on a receiver that is down.

After ``failures`` attempts in a row that could not reach the receiver (a
:class:`~eventisc.errors.ConnectError` or :class:`~eventisc.errors.DeliveryTimeout`), the breaker
opens: for ``reset_after`` seconds the listener's background attempts fail at once with
:class:`~eventisc.errors.CircuitOpenError`, a ``ConnectError`` that the retry policy retries and
gives up on exactly like the failures it stands for, only without their I/O. Then one attempt
goes through as a probe: if it reaches the receiver, whatever the answer, the breaker closes;
if not, it opens again.

Without it, a receiver refusing connections turns every background worker into a busy loop of
failing attempts, and the threads that call ``trigger`` wait for the interpreter lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._fork import register
from ..errors import CircuitOpenError, ConnectError, DeliveryTimeout
from .outcomes import Failure
from .sender import Layer, Result

if TYPE_CHECKING:
    from ..report import Delivery

__all__ = ["BreakerLayer", "CircuitBreaker"]

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """Counts a listener's attempts that could not reach its receiver; see the module."""

    def __init__(
        self,
        listener: str,
        failures: int,
        reset_after: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.listener = listener
        self.failures = failures
        self.reset_after = reset_after
        #: How many times it has opened (a probe that fails does not count again).
        self.opened = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._open_until = 0.0  # 0.0: closed
        self._probing = False
        self._last = ""
        register(self)

    def _after_fork(self) -> None:
        # A forked child: the parent's probe is not ours to wait for, its lock may be held.
        self._lock = threading.Lock()
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open``, or ``half-open`` (a probe may go, or is on its way)."""
        if not self._open_until:
            return "closed"
        return "open" if self._clock() < self._open_until and not self._probing else "half-open"

    def check(self) -> CircuitOpenError | None:
        """Before an attempt: None to go ahead, else the error to fail it with at once."""
        if not self._open_until:  # closed: the common case, no lock
            return None
        with self._lock:
            if not self._open_until:
                return None
            now = self._clock()
            if now >= self._open_until and not self._probing:
                self._probing = True  # this attempt is the probe
                return None
            wait = max(self._open_until - now, 0.0)
        return CircuitOpenError(
            f"not tried: {self._count} attempts in a row could not reach the receiver (the "
            f"last: {self._last}); the next try goes in {wait:.1f} s",
            listener=self.listener,
        )

    def record(self, error: BaseException | None) -> None:
        """After an attempt that :meth:`check` let go: its error, or None when delivered."""
        down = isinstance(error, (ConnectError, DeliveryTimeout))
        if not down and not self._count:  # closed and staying closed: no lock
            return
        with self._lock:
            self._probing = False
            if not down:
                reopened = bool(self._open_until)
                self._count, self._open_until = 0, 0.0
                if reopened:
                    logger.info("listener %r: the receiver answers again", self.listener)
                return
            self._count += 1
            self._last = str(error)
            if self._count < self.failures:
                return
            was_open = bool(self._open_until)
            self._open_until = self._clock() + self.reset_after
            if not was_open:
                self.opened += 1
        if not was_open:
            logger.warning(
                "listener %r: %d attempts in a row could not reach the receiver (%s); its "
                "background attempts fail at once for %g s, then one tries again",
                *(self.listener, self._count, self._last, self.reset_after),
            )

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "opened": self.opened, "failures_in_a_row": self._count}


class BreakerLayer(Layer):
    """The breaker around a route's attempts: held back while open; every attempt that went
    through is recorded (one that was held back is not)."""

    def __init__(self, breaker: CircuitBreaker):
        self.breaker = breaker

    def before(self, delivery: Delivery) -> Failure | None:
        held = self.breaker.check()
        return None if held is None else Failure(held)

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is Failure:
            if type(result.error) is not CircuitOpenError:
                self.breaker.record(result.error)
        else:
            self.breaker.record(None)
        return result
