"""An app's delivery machinery, and the wiring of each route built from it.

:class:`Deliverer` holds what an app's routes share: the spool, the background queue and its
workers, the hooks. :meth:`Deliverer.wire` builds what one route needs to send: its send step
(:mod:`~eventisc.delivery.steps`), chosen from the listener's :class:`~eventisc.settings.Plan`,
and the layers around its attempts (:mod:`~eventisc.delivery.sender`), only those it has: a
circuit breaker (background), the ``410 Gone`` check (``disable_on_gone``), retries (more
than one attempt), the spool (the app has one), and the recording of final outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..settings import CeleryDeliverySettings, DispatcherSettings, OutboxSettings, Plan
from .background import Background
from .breaker import BreakerLayer, CircuitBreaker
from .celerying import (
    HandedLayer,
    Handoff,
    HandoffListener,
    OutboxDeadLayer,
    ToCelery,
    keep_dead_in_outbox,
)
from .dispatcher import Dispatcher
from .gone import GoneLayer, enable, guard
from .outboxing import ToOutbox
from .recording import Hooks, Recorder, RecordLayer
from .retrying import RetryLayer
from .sender import AsyncSender, Layer, Resolve, Sender
from .spooling import SpoolLayer, spool_call
from .steps import Capture, DryRun, Enqueue, Inline, Pipelined, SendStep, direct

if TYPE_CHECKING:
    from ..listeners.base import Listener
    from ..metrics import ListenerMetrics
    from ..notification import Notification
    from ..outbox.writer import OutboxWriter
    from ..report import Delivery
    from ..spool import Spool

__all__ = ["Deliverer", "Wiring"]

#: What a captured notification is handed to (see :func:`eventisc.testing.capture`).
CaptureHook = Callable[["Listener", "Notification"], object]


@dataclass
class Wiring:
    """What one route sends with: its step, the recorder of its final outcomes, and (when it
    has them) the sender of its attempts and its circuit breaker."""

    send: SendStep
    recorder: Recorder
    sender: Sender | None = None
    breaker: CircuitBreaker | None = None


class Deliverer:
    """An app's spool, background queue, outbox and hooks; builds each route's wiring."""

    def __init__(
        self,
        *,
        spool: Spool | None,
        settings: DispatcherSettings,
        background: bool,
        hooks: Hooks | None = None,
        outbox: OutboxSettings | None = None,
        celery: CeleryDeliverySettings | None = None,
    ):
        self.spool = spool
        self.settings = settings
        self.hooks = hooks if hooks is not None else Hooks()
        self.background = Background(settings, spool) if background else None
        self.outbox_settings = outbox
        #: The outbox writer, made for the first route with ``delivery: outbox``.
        self.outbox: OutboxWriter | None = None
        self.celery_settings = celery
        #: What hands notifications to the Celery workers, made for the first route with
        #: ``delivery: celery``.
        self.handoff: Handoff | None = None

    @property
    def dispatcher(self) -> Dispatcher | None:
        """The background dispatcher (None without background delivery)."""
        return self.background.dispatcher if self.background is not None else None

    def wire(
        self,
        listener: Listener,
        plan: Plan,
        metrics: ListenerMetrics,
        *,
        dry_run: bool = False,
        capture: CaptureHook | None = None,
    ) -> Wiring:
        """The wiring of a route for ``listener``: a capture or dry-run step when asked, else
        its delivery as ``plan`` says."""
        recorder = Recorder(listener, metrics, self.hooks)
        if capture is not None:
            return Wiring(Capture(listener, recorder, capture).send, recorder)
        if dry_run:
            return Wiring(DryRun(listener, recorder).send, recorder)
        if plan.outbox:
            self._outbox_writer()
            return Wiring(ToOutbox(listener, recorder).send, recorder)
        if plan.celery:
            return Wiring(ToCelery(listener, recorder, self._handoff(), self.spool).send, recorder)
        if plan.background:
            return self._background(listener, plan, metrics, recorder)
        if plan.policy.max_attempts == 1 and self.spool is None and not self.hooks:
            step = direct(listener, recorder)
            return Wiring(guard(step, recorder) if listener.disable_on_gone else step, recorder)
        sender = Sender(listener, self._layers(plan, metrics, recorder), recorder)
        return Wiring(Inline(sender, plan.priority).send, recorder, sender)

    def _outbox_writer(self) -> OutboxWriter:
        if self.outbox is None:
            from ..outbox.writer import OutboxWriter  # psycopg: only for apps with an outbox

            assert self.outbox_settings is not None, "an outbox route needs the outbox settings"
            self.outbox = OutboxWriter(self.outbox_settings)
        return self.outbox

    def _handoff(self) -> Handoff:
        if self.handoff is None:
            if self.celery_settings is None:
                raise ConfigError(
                    "handing notifications to Celery needs a `celery_delivery` (app or broker_url)",
                    "celery_delivery",
                )
            self.handoff = Handoff(self.celery_settings)
        return self.handoff

    def _background(
        self, listener: Listener, plan: Plan, metrics: ListenerMetrics, recorder: Recorder
    ) -> Wiring:
        background = self.background
        assert background is not None, "a background route needs a background app"
        breaker = None
        layers = self._layers(plan, metrics, recorder)
        if self.settings.breaker_failures:
            breaker = CircuitBreaker(
                listener.name, self.settings.breaker_failures, self.settings.breaker_reset
            )
            layers.insert(0, BreakerLayer(breaker))
        if listener.delivers_async():
            dispatcher = background.dispatcher
            sender: Sender = AsyncSender(
                listener, layers, recorder, expect=dispatcher.expect, resolve=dispatcher.resolve
            )
            step: Enqueue = Pipelined(sender, plan.priority, background, plan.durable)
        else:
            sender = Sender(listener, layers, recorder)
            step = Enqueue(sender, plan.priority, background, plan.durable)
        return Wiring(step.send, recorder, sender, breaker)

    def relay_sender(
        self,
        listener: Listener,
        plan: Plan,
        metrics: ListenerMetrics,
        recorder: Recorder,
        *,
        note: Layer,
        resolve: Resolve,
    ) -> tuple[Sender, CircuitBreaker | None]:
        """The sender of an outbox relay's deliveries for ``listener``, and its circuit
        breaker: as in background delivery (the breaker, pipelined publishing for a listener
        that ``delivers_async()``, the recording of final outcomes), but without inline
        retries: a failure ``plan.policy`` retries comes to a :class:`RetryAfter`, for the relay
        to write to the row. ``note`` (the relay's layer) sees each raw result first;
        asynchronous outcomes go to ``resolve``. No spool: the table keeps the dead rows."""
        layers: list[Layer] = [note, *_gone(recorder)]
        if plan.policy.max_attempts > 1:
            layers.append(RetryLayer(plan.policy, metrics))
        layers.append(RecordLayer(recorder))
        breaker = None
        if self.settings.breaker_failures:
            breaker = CircuitBreaker(
                listener.name, self.settings.breaker_failures, self.settings.breaker_reset
            )
            layers.insert(0, BreakerLayer(breaker))
        if listener.delivers_async():
            # The relay counts its deliveries in flight itself: nothing to expect.
            sender: Sender = AsyncSender(
                listener, layers, recorder, expect=lambda delivery: None, resolve=resolve
            )
            return sender, breaker
        return Sender(listener, layers, recorder), breaker

    def handoff_sender(
        self, listener: Listener, plan: Plan, recorder: Recorder, *, note: Layer
    ) -> Sender:
        """The sender of an outbox relay that hands ``listener``'s rows to the Celery workers
        (``eventisc relay --via celery``): each attempt sends the task; one the broker took is
        recorded as ``outboxed``, one it did not take is handed off again after
        ``plan.policy``'s delay (:class:`~.celerying.HandedLayer`). Needs
        ``celery_delivery``."""
        handoff = HandoffListener(listener, self._handoff())
        layers = [note, HandedLayer(recorder, plan.policy)]
        return Sender(handoff, layers, recorder)  # type: ignore[arg-type]

    def worker_sender(
        self, listener: Listener, plan: Plan, metrics: ListenerMetrics, recorder: Recorder
    ) -> Sender:
        """The sender of a Celery worker's deliveries for ``listener``: no inline retries (a
        failure ``plan.policy`` retries comes to a :class:`RetryAfter`, for the task to retry
        with Celery), a final failure kept dead in the outbox table (the app has an outbox) or
        the spool (it has one), the final outcomes recorded (metrics, hooks, logs)."""
        dead = None
        if self.outbox_settings is not None:  # dead rows in the outbox, not the spool
            dead = OutboxDeadLayer(self._outbox_writer())
        return Sender(listener, self._layers(plan, metrics, recorder, dead), recorder)

    def keep_dead(self, notification: Notification, attempts: int, error: str) -> str:
        """Keep ``notification`` as a dead letter where a worker keeps its final failures:
        the outbox table (the app has an outbox) or the spool (it has one). Where it went, for
        the log (``dropped`` when nowhere or when that failed, which is logged)."""
        if self.outbox_settings is not None:
            writer = self._outbox_writer()
            row = keep_dead_in_outbox(writer, notification, attempts, error)
            if row is None:
                return "dropped"
            return f"dead in the outbox table {writer.settings.table} as row {row.seq}"
        spool = self.spool
        if spool is None:
            return "dropped"
        add = lambda: spool.add(notification, error=error, attempts=attempts)  # noqa: E731
        entry = spool_call(spool, "keep a notification in", add)
        return "dropped" if entry is None else f"dead in the spool as #{entry}"

    def _layers(
        self, plan: Plan, metrics: ListenerMetrics, recorder: Recorder, dead: Layer | None = None
    ) -> list[Layer]:
        """The layers of a route's sender; ``dead`` keeps final failures (default: the spool
        layer, when the app has a spool)."""
        layers: list[Layer] = _gone(recorder)
        if plan.policy.max_attempts > 1:
            layers.append(RetryLayer(plan.policy, metrics))
        if dead is None and self.spool is not None:
            dead = SpoolLayer(self.spool)
        if dead is not None:
            layers.append(dead)
        layers.append(RecordLayer(recorder))
        return layers

    def enable(self, listener: Listener) -> bool:
        """Turn ``listener`` back on after a ``410 Gone``; False if it was not disabled."""
        return enable(listener)

    # -- the app's life -------------------------------------------------------------------------

    def recover(self, routes: Iterable[tuple[Wiring, Plan]]) -> None:
        """Deliver in the background what earlier processes left pending in the spool."""
        if self.background is None:
            return
        senders = {
            wiring.sender.listener.name: (wiring.sender, plan.priority)
            for wiring, plan in routes
            if plan.background and wiring.sender is not None
        }
        self.background.recover(senders)

    def flush(self, timeout: float | None) -> bool:
        return self.background is None or self.background.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> list[Delivery]:
        left = [] if self.background is None else self.background.shutdown(timeout)
        if self.outbox is not None:
            self.outbox.close()
        if self.handoff is not None:
            self.handoff.close()
        return left


def _gone(recorder: Recorder) -> list[Layer]:
    """The ``410 Gone`` layer for a listener with ``disable_on_gone``; none for the others."""
    return [GoneLayer(recorder)] if recorder.listener.disable_on_gone else []
