"""Disabling a listener whose receiver answered ``410 Gone`` (the listener's
``disable_on_gone``, as Standard Webhooks senders do).

A 410 says the endpoint was removed for good: the listener is disabled at once (that attempt
is not retried), and every later attempt fails at once with
:class:`~eventisc.errors.ListenerDisabled`, recorded like any failure (logged, counted,
spooled, reported), until ``App.enable(name)``. The state is on the listener
(``Listener.disabled``), so it holds for every route built for it — sync, background, the
outbox relay — and across rewiring. Only listeners with ``disable_on_gone`` get the check:
:class:`GoneLayer` among a sender's layers, :func:`guard` around the direct step.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..errors import HTTPStatusError, ListenerDisabled
from .outcomes import Failure
from .sender import Layer, Result

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..notification import Notification
    from ..report import Delivery
    from .recording import Recorder
    from .steps import SendStep

__all__ = ["GONE", "GoneLayer", "disable", "disabled_error", "enable", "guard", "is_gone"]

logger = logging.getLogger(__name__)

#: The status that disables a listener.
GONE = 410

#: Makes "first to disable" exact when several threads get a 410 at once.
_lock = threading.Lock()


def is_gone(error: BaseException) -> bool:
    """Whether ``error`` is the receiver's ``410 Gone``."""
    return isinstance(error, HTTPStatusError) and error.status == GONE


def disabled_error(listener: Listener) -> ListenerDisabled:
    """The error of an attempt not made because ``listener`` is disabled."""
    return ListenerDisabled(
        f"not sent: the listener is disabled since {listener.disabled}; "
        f"App.enable({listener.name!r}) turns it back on",
        listener=listener.name,
    )


def disable(listener: Listener, gone: BaseException, recorder: Recorder) -> ListenerDisabled:
    """Disable ``listener`` after ``gone`` (a 410); returns the error that attempt fails with.
    The first 410 logs a WARNING, counts and runs the ``disabled`` hooks; a 410 of an
    attempt that was under way meanwhile only fails."""
    where = listener.describe() or f"listener {listener.name!r}"
    with _lock:
        first = listener.disabled is None
        if first:
            listener.disabled = f"{where} answered 410 Gone"
    error = ListenerDisabled(
        f"{where} answered 410 Gone: the listener is disabled, nothing more is sent to it "
        f"until App.enable({listener.name!r})",
        listener=listener.name,
    )
    error.__cause__ = gone
    if first:
        recorder.metrics.disabled.inc()
        logger.warning(
            "listener %r disabled: %s answered 410 Gone; nothing more is sent to it until "
            "App.enable(%r)",
            *(listener.name, where, listener.name),
        )
        recorder.hooks.run_disabled(listener.name, error)
    return error


def enable(listener: Listener) -> bool:
    """Turn ``listener`` back on; False if it was not disabled."""
    with _lock:
        was, listener.disabled = listener.disabled, None
    if was is not None:
        logger.info("listener %r enabled again", listener.name)
    return was is not None


class GoneLayer(Layer):
    """A disabled listener's attempts fail at once; a 410 disables it and is not retried."""

    def __init__(self, recorder: Recorder):
        self.listener = recorder.listener
        self.recorder = recorder

    def before(self, delivery: Delivery) -> Failure | None:
        if self.listener.disabled is None:
            return None
        return Failure(disabled_error(self.listener))

    def after(self, delivery: Delivery, result: Result) -> Result:
        if type(result) is Failure and is_gone(result.error):
            return Failure(disable(self.listener, result.error, self.recorder))
        return result


def guard(send: SendStep, recorder: Recorder) -> SendStep:
    """The direct step ``send`` of a listener with ``disable_on_gone``: not sent while
    disabled, disabled by a 410 (the error propagates to the route, which records it)."""
    listener = recorder.listener

    def guarded(
        notification: Notification, start: float, sink: list[Delivery] | None
    ) -> bool | BaseException:
        if listener.disabled is not None:
            raise disabled_error(listener)
        try:
            return send(notification, start, sink)
        except HTTPStatusError as exc:
            if exc.status != GONE:
                raise
            raise disable(listener, exc, recorder) from exc

    guarded.attempt = getattr(send, "attempt", False)  # type: ignore[attr-defined]  # (tracing)
    return guarded
