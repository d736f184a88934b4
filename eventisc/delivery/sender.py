"""One route's attempts: the listener's ``deliver`` between the layers of the route.

The layers (:mod:`~eventisc.delivery.breaker`, :mod:`~eventisc.delivery.retrying`,
:mod:`~eventisc.delivery.spooling`, :mod:`~eventisc.delivery.recording`) are policies composed
once, when the route is built, in the spirit of dramatiq's middleware but ahead of time: a route
has only the layers it needs, and each attempt calls only the hooks those layers define.

- ``before(delivery)`` runs before an attempt; returning a raw result (a :class:`Failure`)
  skips the attempt (an open circuit breaker does).
- ``after(delivery, result)`` runs after it, inner layers first; it gets the raw result, or
  what an inner layer made of it (a :class:`RetryAfter`, :data:`FINAL`), and returns what to
  pass on. The outermost layer records a final outcome on the delivery and returns
  :data:`FINAL`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import EventiscError, StaleConnection
from ..tracing import send as traced_send
from ..tracing import send_async as traced_send_async
from .outcomes import FINAL, IN_FLIGHT, Failure, Outcome, RetryAfter, Sent

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..notification import Notification
    from ..report import Delivery
    from .recording import Recorder

__all__ = ["AsyncSender", "Layer", "Sender", "deliver", "name_listener"]

logger = logging.getLogger(__name__)

#: What a layer's ``after`` gets and gives.
Result = Sent | Failure | RetryAfter | Outcome
#: Where an asynchronous attempt's outcome goes (the dispatcher's ``resolve``).
Resolve = Callable[["Delivery", "Outcome | RetryAfter"], None]


class Layer:
    """A policy around a route's attempts; subclasses define ``before``, ``after`` or both."""

    before: Callable[[Delivery], Failure | None] | None = None
    after: Callable[[Delivery, Result], Result] | None = None


def name_listener(exc: BaseException, listener: Listener) -> BaseException:
    """Fill in which listener an eventisc error is about (drivers' code does not know)."""
    if isinstance(exc, EventiscError) and getattr(exc, "listener", "") is None:
        exc.listener = listener.name  # type: ignore[attr-defined]
    return exc


def deliver(listener: Listener, notification: Notification) -> Any:
    """``listener.deliver(notification)``, sent once more at once when the listener found its
    kept connection dead (:class:`~eventisc.errors.StaleConnection`)."""
    try:
        return listener.deliver(notification)
    except StaleConnection as exc:
        return send_again(listener, notification, exc)


def send_again(listener: Listener, notification: Notification, stale: StaleConnection) -> Any:
    """Send once more after ``stale``: the listener dropped the dead connection, the next one
    is fresh. Not an attempt of its own; a second failure is the attempt's."""
    logger.info("listener %r: %s; sending again at once", listener.name, stale)
    return listener.deliver(notification)


def _send(listener: Listener, notification: Notification) -> Sent | Failure:
    """One attempt. Its frame holds neither the delivery nor the result: the error's
    traceback reaches it, and such a reference would be a cycle."""
    try:
        return Sent(deliver(listener, notification))
    except Exception as exc:
        return Failure(name_listener(exc, listener))


class Sender:
    """The attempts of one route: ``layers`` around ``listener.deliver``; ``recorder`` records
    final outcomes (the outermost layer uses it, and so does shutdown)."""

    def __init__(self, listener: Listener, layers: Sequence[Layer], recorder: Recorder):
        self.listener = listener
        self.recorder = recorder
        self._befores = tuple(layer.before for layer in layers if layer.before is not None)
        self._afters = tuple(layer.after for layer in layers if layer.after is not None)

    def attempt(self, delivery: Delivery) -> Outcome | RetryAfter:
        """Make one attempt: :data:`FINAL` (the delivery has its final status), or
        :class:`RetryAfter`. Never raises."""
        delivery.attempts += 1
        result: Sent | Failure | None = self._begin(delivery)
        if result is None:
            if delivery.notification.trace is None:  # type: ignore[union-attr]
                result = _send(self.listener, delivery.notification)  # type: ignore[arg-type]
            else:  # in its span, under the trigger's
                result = traced_send(_send, self.listener, delivery)
        outcome = self._end(delivery, result)
        # The error's traceback reaches this frame (as its callee's f_back): holding the
        # delivery and the result, which hold the error, it would be a reference cycle.
        del delivery, result
        return outcome

    def _begin(self, delivery: Delivery) -> Failure | None:
        for before in self._befores:
            result = before(delivery)
            if result is not None:
                return result
        return None

    def _end(self, delivery: Delivery, result: Result) -> Outcome | RetryAfter:
        for after in self._afters:
            result = after(delivery, result)
        assert result is FINAL or type(result) is RetryAfter, result
        return result


class AsyncSender(Sender):
    """The attempts of a route whose listener delivers asynchronously (``deliver_async``): an
    attempt starts and returns :data:`IN_FLIGHT`; its outcome goes to ``resolve`` later (the
    dispatcher's), from whichever thread the listener answers on."""

    def __init__(
        self,
        listener: Listener,
        layers: Sequence[Layer],
        recorder: Recorder,
        *,
        expect: Callable[[Delivery], None],
        resolve: Resolve,
    ):
        super().__init__(listener, layers, recorder)
        self._expect = expect
        self._resolve = resolve

    def attempt(self, delivery: Delivery) -> Outcome | RetryAfter:
        self.start(delivery)
        return IN_FLIGHT

    def start(self, delivery: Delivery) -> None:
        """Start one attempt; its outcome goes to ``resolve`` exactly once."""
        self._expect(delivery)
        delivery.attempts += 1
        held = self._begin(delivery)
        if held is not None:
            self._resolve(delivery, self._end(delivery, held))
            return
        listener = self.listener

        def done(detail: Any, error: BaseException | None) -> None:
            if delivery.done:  # given up on at shutdown; an outcome after that changes nothing
                return
            raw = Sent(detail) if error is None else Failure(name_listener(error, listener))
            self._resolve(delivery, self._end(delivery, raw))

        try:
            if delivery.notification.trace is None:  # type: ignore[union-attr]
                listener.deliver_async(delivery.notification, done)  # type: ignore[arg-type]
            else:  # in its span, under the trigger's, ended when the listener answers
                traced_send_async(listener, delivery, done)
        except Exception as exc:
            done(None, exc)
