"""Delivering rendered notifications: attempts and retries, background queueing, the spool.

:class:`Deliverer` is the part of an App that runs after rendering. Each listener gets a
:class:`Plan` (sync or background, its retry policy, durable or not, its priority). One
attempt is :meth:`Deliverer.attempt`; synchronous delivery loops over it in the caller's
thread, background delivery lets the :class:`~eventisc.dispatch.Dispatcher` call it and
schedule the retries. A notification that is given up on goes to the spool when there is one.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .breaker import CircuitBreaker
from .dispatch import IN_FLIGHT, Dispatcher, DispatcherSettings
from .errors import EventiscError, QueueFull
from .logs import Throttle, log_extra
from .metrics import ListenerMetrics
from .report import Delivery
from .retry import DEFAULT_BACKGROUND, DEFAULT_SYNC, RetryPolicy

if TYPE_CHECKING:
    from .listeners.base import Listener
    from .notification import Notification
    from .spool import Spool

__all__ = ["Deliverer", "Plan"]

logger = logging.getLogger("eventisc")


class Plan:
    """How one listener's notifications are delivered, resolved from listener and app."""

    __slots__ = (
        "background", "policy", "durable", "priority", "simple", "pipelined", "metrics", "breaker"
    )  # fmt: skip

    def __init__(self, background: bool, policy: RetryPolicy, durable: bool, priority: int):
        self.background = background
        self.policy = policy
        self.durable = durable
        self.priority = priority
        self.metrics = ListenerMetrics()
        #: One attempt and nowhere to keep a failure: deliver directly, no bookkeeping.
        self.simple = False
        #: Background delivery through the listener's own asynchronous pipeline.
        self.pipelined = False
        #: Holds background attempts back while the receiver is unreachable.
        self.breaker: CircuitBreaker | None = None


def name_listener(exc: BaseException, listener: Listener) -> BaseException:
    """Fill in which listener an eventisc error is about (drivers' code does not know)."""
    if isinstance(exc, EventiscError) and getattr(exc, "listener", "") is None:
        exc.listener = listener.name  # type: ignore[attr-defined]
    return exc


def _send(listener: Listener, notification: Notification) -> tuple[Any, Exception | None]:
    """One ``deliver`` call: ``(detail, None)`` or ``(None, error)`` (see :meth:`attempt`)."""
    try:
        return listener.deliver(notification), None
    except Exception as exc:
        return None, exc


def release_frames(error: BaseException) -> None:
    """Clear the local variables of the finished frames in ``error``'s tracebacks (its causes
    and contexts included), keeping the tracebacks printable.

    A driver's error holds the frames it was raised through, and their locals (sockets,
    requests, buffers, often the error itself: a reference cycle, as in urllib3). A delivery
    that ends in failure keeps its error, so without this every failed delivery would keep all
    of that, and what the cycles hold is freed only by a garbage collection, a full one for a
    delivery that lived long enough to reach the oldest generation.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        todo += (exc.__cause__, exc.__context__)


def log_failure(
    listener: Listener,
    event_name: str,
    exc: BaseException,
    attempts: int = 1,
    outcome: str = "failed",
    latency: float | None = None,
) -> None:
    """Log a listener's final failure with its traceback (never silent)."""
    name_listener(exc, listener)
    logger.error(
        "listener %r failed for event %r%s: %s",
        listener.name,
        event_name,
        f" after {attempts} attempts" if attempts > 1 else "",
        exc,
        exc_info=exc,
        extra=log_extra(event_name, listener.name, attempts, outcome, latency),
    )


class Deliverer:
    """Attempts, retries, background queueing and the spool, for one App."""

    def __init__(
        self,
        *,
        spool: Spool | None,
        settings: DispatcherSettings,
        background: bool,
    ):
        self.spool = spool
        self.settings = settings
        self.on_full = settings.on_full or ("spool" if spool is not None else "block")
        self.dispatcher = Dispatcher(settings, self.attempt) if background else None
        self.plans: dict[Listener, Plan] = {}
        #: Callbacks by final status (``delivered``, ``failed``, ``spooled``, ``dropped``).
        self.hooks: dict[str, list[Callable[[Delivery], object]]] = {}
        self._full_log = Throttle(1.0)

    def finish(
        self,
        delivery: Delivery,
        status: str,
        error: BaseException | None = None,
        detail: Any = None,
    ) -> None:
        """Record a delivery's final outcome: on the delivery, in the metrics, to the hooks."""
        delivery.finish(status, error, detail)
        plan = self.plans.get(delivery.listener)
        if plan is not None:
            plan.metrics.finished(status, delivery.latency)
        if status == "delivered" and logger.isEnabledFor(logging.DEBUG):
            event_name = delivery.notification.event_name if delivery.notification else "?"
            logger.debug(
                "listener %r delivered event %r: %s",
                delivery.name,
                event_name,
                detail,
                extra=log_extra(event_name, delivery.name, delivery.attempts, "delivered",
                                delivery.latency),
            )  # fmt: skip
        for hook in self.hooks.get(status, ()):
            try:
                hook(delivery)
            except Exception:
                logger.exception("a %r hook failed for listener %r", status, delivery.name)
        if error is not None:
            release_frames(error)

    # -- one attempt ------------------------------------------------------------------------

    def attempt(self, delivery: Delivery) -> float | None:
        """Make one attempt; None when the delivery is final, else seconds until the next.

        A listener that delivers asynchronously (in background mode) returns
        :data:`IN_FLIGHT`: the outcome arrives later, through :meth:`_resolved`.
        """
        listener = delivery.listener
        plan = self.plans[listener]
        delivery.attempts += 1
        notification = delivery.notification
        assert notification is not None
        if plan.pipelined:
            self._send_async(delivery, plan)
            return IN_FLIGHT
        breaker = plan.breaker
        held_back = breaker.check() if breaker is not None else None
        if held_back is None:
            detail, error = _send(listener, notification)
            if breaker is not None:
                breaker.record(error)
        else:  # the receiver was unreachable a moment ago: fail at once, retry as planned
            detail, error = None, held_back
        outcome = self._outcome(delivery, plan, detail, error)
        # The error's traceback reaches this frame (as its callee's f_back): holding the
        # delivery, which holds the error, it would be a reference cycle, freed only by a full
        # garbage collection.
        del delivery, error
        return outcome

    def _send_async(self, delivery: Delivery, plan: Plan) -> None:
        assert delivery.notification is not None
        dispatcher = self.dispatcher
        assert dispatcher is not None

        def done(detail: Any, error: BaseException | None) -> None:
            if delivery.done:  # given up on at shutdown; an outcome after that changes nothing
                return
            delay = self._outcome(delivery, plan, detail, error)
            dispatcher.resolve(delivery, delay)

        dispatcher.expect(delivery)
        try:
            delivery.listener.deliver_async(delivery.notification, done)
        except Exception as exc:
            done(None, exc)

    def _outcome(
        self, delivery: Delivery, plan: Plan, detail: Any, error: BaseException | None
    ) -> float | None:
        """Record what one attempt did; None when final, else seconds until the next."""
        listener = delivery.listener
        notification = delivery.notification
        assert notification is not None
        if error is not None:
            exc = name_listener(error, listener)
            if plan.policy.should_retry(exc, delivery.attempts):
                delay = plan.policy.delay(delivery.attempts, exc)
                logger.info(
                    "listener %r: attempt %d for event %r failed (%s); retrying in %.2fs",
                    *(listener.name, delivery.attempts, notification.event_name, exc, delay),
                    extra=log_extra(
                        notification.event_name, listener.name, delivery.attempts, "retrying"
                    ),
                )
                plan.metrics.retried.inc()
                release_frames(exc)
                return delay
            self.give_up(delivery, exc)
            return None
        if delivery.spool_id is not None and self.spool is not None:
            self._spool_call("remove a delivered notification from", self.spool.delivered,
                             delivery.spool_id)  # fmt: skip
        if detail is False:
            self.finish(delivery, "skipped", detail="declined by the listener")
        else:
            self.finish(delivery, "delivered", detail=detail)
        return None

    def deliver_now(self, delivery: Delivery) -> None:
        """Deliver in the calling thread, retrying inline as the policy says."""
        while (delay := self.attempt(delivery)) is not None:
            time.sleep(delay)

    def give_up(self, delivery: Delivery, exc: BaseException, reason: str = "failed") -> None:
        """A final failure: keep it in the spool when there is one, log it in any case."""
        notification = delivery.notification
        event_name = notification.event_name if notification is not None else "?"
        outcome = "spooled" if self.spool is not None and notification is not None else "failed"
        latency = time.monotonic() - delivery.created
        log_failure(delivery.listener, event_name, exc, delivery.attempts, outcome, latency)
        if self.spool is not None and notification is not None:
            saved = self._spool_call(
                "keep a failed notification in",
                self._save_dead,
                delivery,
                f"{type(exc).__name__}: {exc}",
                reason,
            )
            if saved:
                self.finish(delivery, "spooled", exc)
                return
        self.finish(delivery, "failed", exc)

    def _save_dead(self, delivery: Delivery, error: str, reason: str) -> bool:
        assert self.spool is not None and delivery.notification is not None
        if delivery.spool_id is not None:
            self.spool.give_up(
                delivery.spool_id, error=error, attempts=delivery.attempts, reason=reason
            )
        else:
            delivery.spool_id = self.spool.add(
                delivery.notification,
                state="dead",
                reason=reason,
                error=error,
                attempts=delivery.attempts,
            )
        return True

    def _spool_call(self, doing: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            path = getattr(self.spool, "path", "?")
            logger.exception("could not %s the spool %s", doing, path)
            return None

    # -- background ---------------------------------------------------------------------------

    def enqueue(self, delivery: Delivery, plan: Plan) -> bool:
        """Hand a delivery to the background workers; False when it was not accepted.

        A durable delivery is written to the spool first (a spool failure raises). A full
        queue blocks, drops or spools as ``on_full`` says.
        """
        assert self.dispatcher is not None and delivery.notification is not None
        if plan.durable:
            assert self.spool is not None
            delivery.spool_id = self.spool.add(
                delivery.notification, state="pending", reason="durable"
            )
        if plan.pipelined:
            # Straight to the listener's own pipeline: no worker needed to start an attempt.
            self.dispatcher.track(delivery)
            delivery.attempts += 1
            self._send_async(delivery, plan)
            return True
        block = self.on_full == "block"
        timeout = self.settings.block_timeout if block else None
        if self.dispatcher.submit(delivery, block, timeout):
            return True
        full = QueueFull(
            f"the background queue is full ({self.settings.queue_size} notifications)",
            delivery.listener.name,
        )
        spooled = self.on_full != "drop" and self.spool is not None
        self._log_full(delivery, full, "spooled" if spooled else "dropped")
        if spooled or delivery.spool_id is not None:
            self._spool_call("keep a refused notification in", self._save_dead, delivery,
                             str(full), "queue full")  # fmt: skip
        self.finish(delivery, "spooled" if spooled else "dropped", full)
        return False

    def _log_full(self, delivery: Delivery, full: QueueFull, outcome: str) -> None:
        # A full queue refuses notifications by the thousand: one record per second, with
        # the count, rather than a record each (the metrics count every one).
        skipped = self._full_log.ready()
        if skipped is None:
            return
        assert delivery.notification is not None
        level = logging.WARNING if outcome == "spooled" else logging.ERROR
        more = f" (and {skipped} more since the last such message)" if skipped else ""
        logger.log(
            level,
            "listener %r: %s; %s%s",
            *(delivery.name, full, outcome, more),
            extra=log_extra(delivery.notification.event_name, delivery.name, 0, outcome),
        )

    def flush(self, timeout: float | None) -> bool:
        return self.dispatcher is None or self.dispatcher.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> list[Delivery]:
        """Drain the background queue for up to ``timeout`` (default ``shutdown_timeout``)
        seconds, then keep what is left in the spool as pending (the next app with this spool
        delivers it), or log it. Returns what was left."""
        if self.dispatcher is None:
            return []
        wait = self.settings.shutdown_timeout if timeout is None else timeout
        leftovers = self.dispatcher.shutdown(wait)
        if leftovers:
            self._keep(leftovers)
        return leftovers

    def _keep(self, leftovers: Sequence[Delivery]) -> None:
        if self.spool is not None and self._spool_call(
            "keep the notifications left at shutdown in", self._save_leftovers, leftovers
        ):
            for delivery in leftovers:
                self.finish(
                    delivery, "spooled", QueueFull("still queued at shutdown", delivery.name)
                )
            logger.warning(
                "%d notification(s) were still queued at shutdown; kept in the spool %s, "
                "delivered by the next app using it",
                len(leftovers),
                self.spool.path,
            )
            return
        for delivery in leftovers:
            self.finish(delivery, "dropped", QueueFull("still queued at shutdown", delivery.name))
        logger.error(
            "%d notification(s) were still queued at shutdown and are lost%s: %s",
            len(leftovers),
            "" if self.spool is not None else " (configure a spool to keep them)",
            ", ".join(sorted({d.name for d in leftovers})),
        )

    def _save_leftovers(self, leftovers: Sequence[Delivery]) -> bool:
        from .spool import SpoolItem

        assert self.spool is not None
        durable = [d.spool_id for d in leftovers if d.spool_id is not None]
        if durable:
            self.spool.release(durable)  # already stored: let the next app take them
        self.spool.add_many(
            SpoolItem(d.notification, state="pending", reason="shutdown", owner=None,
                      attempts=d.attempts)
            for d in leftovers
            if d.spool_id is None and d.notification is not None
        )  # fmt: skip
        return True

    def recover(self, listeners: Iterable[Listener]) -> threading.Thread | None:
        """Deliver in the background what an earlier process left pending in the spool."""
        if self.spool is None or self.dispatcher is None:
            return None
        by_name = {lis.name: lis for lis in listeners if self.plans[lis].background}
        if not by_name:
            return None
        thread = threading.Thread(
            target=self._recover, args=(by_name,), name="eventisc-recover", daemon=True
        )
        thread.start()
        return thread

    def _recover(self, by_name: dict[str, Listener]) -> None:
        assert self.spool is not None and self.dispatcher is not None
        try:
            entries = self.spool.claim_orphans(list(by_name))
        except Exception:
            logger.exception("could not read pending notifications from %s", self.spool.path)
            return
        if entries:
            logger.info(
                "delivering %d pending notification(s) left in %s", len(entries), self.spool.path
            )
        for entry in entries:
            listener = by_name[entry.notification.listener]
            delivery = Delivery(
                listener, entry.notification, self.plans[listener].priority, entry.id
            )
            delivery.attempts = entry.attempts
            self.dispatcher.submit(delivery, block=True, timeout=None)


def make_plan(
    listener: Listener,
    *,
    delivery: str,
    retry: RetryPolicy | None,
    durable: bool,
    has_spool: bool,
    settings: DispatcherSettings | None = None,
) -> Plan:
    """Resolve a listener's own settings over the app's (``settings``: the dispatcher's)."""
    background = (listener.delivery or delivery) == "background"
    policy = listener.retry or retry or (DEFAULT_BACKGROUND if background else DEFAULT_SYNC)
    is_durable = durable if listener.durable is None else listener.durable
    plan = Plan(background, policy, bool(is_durable), listener.priority)
    plan.simple = not background and policy.max_attempts == 1 and not has_spool
    plan.pipelined = background and listener.delivers_async()
    if background and not plan.pipelined and settings is not None and settings.breaker_failures:
        plan.breaker = CircuitBreaker(
            listener.name, settings.breaker_failures, settings.breaker_reset
        )
    return plan
