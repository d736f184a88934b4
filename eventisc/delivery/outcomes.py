"""What an attempt comes to: small values, never sentinel numbers.

An attempt first has a *raw* result, :class:`Sent` or :class:`Failure`; the layers of the
route turn it into what the scheduler needs to know: :data:`FINAL` (the delivery has its final
status, on the :class:`~eventisc.report.Delivery`), :class:`RetryAfter` (try again after that
many seconds) or :data:`IN_FLIGHT` (an asynchronous attempt: its outcome comes later).

The scheduler's values hold no error: an error's traceback reaches the frames that handled it,
and a value held there would make a reference cycle freed only by a full garbage collection.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FINAL", "IN_FLIGHT", "Failure", "Outcome", "RetryAfter", "Sent", "Step"]


class Sent:
    """The listener delivered (``detail`` is what it returned; False: it declined)."""

    __slots__ = ("detail",)

    def __init__(self, detail: Any):
        self.detail = detail

    def __repr__(self) -> str:
        return f"Sent({self.detail!r})"


class Failure:
    """The attempt failed with ``error``; whether it is final is for the layers to say.
    ``status`` is what a final failure is recorded as: ``failed``, or ``spooled`` once the
    spool keeps it."""

    __slots__ = ("error", "status")

    def __init__(self, error: BaseException, status: str = "failed"):
        self.error = error
        self.status = status

    def __repr__(self) -> str:
        return f"Failure({self.error!r}, {self.status!r})"


#: A raw result, as a layer sees it.
Step = Sent | Failure


class Outcome:
    """A named outcome for the scheduler (:data:`FINAL`, :data:`IN_FLIGHT`)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The delivery is final: delivered, declined, failed, spooled or dropped.
FINAL = Outcome("FINAL")
#: The attempt goes on asynchronously; its outcome comes through a callback.
IN_FLIGHT = Outcome("IN_FLIGHT")


class RetryAfter:
    """Try again after ``delay`` seconds."""

    __slots__ = ("delay",)

    def __init__(self, delay: float):
        self.delay = delay

    def __repr__(self) -> str:
        return f"RetryAfter({self.delay:.3g})"
