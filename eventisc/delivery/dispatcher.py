"""The background dispatcher: a bounded priority queue and a pool of worker threads that scales.

It only schedules. Workers take deliveries from the queue (lowest ``priority`` first, then in
order) and make one attempt each with ``delivery.sender.attempt(delivery)``, which returns what
to do next: nothing (:data:`~eventisc.delivery.outcomes.FINAL`), wait for an asynchronous
outcome (:data:`~eventisc.delivery.outcomes.IN_FLIGHT`, settled later by :meth:`resolve`), or
try again after a delay (:class:`~eventisc.delivery.outcomes.RetryAfter`). A delivery waiting
for its retry waits in a schedule, not in a worker: the monitor thread puts it back in the queue
when its time comes. Every ``monitor_interval`` (and at once when a submitted delivery finds no
idle worker) the monitor also compares the queue's depth with the idle workers and starts more,
up to ``max_workers``; a worker idle for ``idle_timeout`` seconds ends, down to ``min_workers``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Any

from .._fork import register
from ..report import Delivery
from ..settings import DispatcherSettings
from .outcomes import FINAL, IN_FLIGHT, Outcome, RetryAfter

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

#: Seconds the load average looks back over (roughly).
LOAD_WINDOW = 60.0

_STOP = 2**62  # the priority of the sentinels that end workers: after every real delivery


class Dispatcher:
    """Runs deliveries on worker threads (see the module docstring).

    A delivery's ``sender.attempt(delivery)`` must not raise: an exception is logged and ends
    the delivery as failed.
    """

    def __init__(self, settings: DispatcherSettings):
        self.settings = settings
        self._reset()
        register(self)

    def _after_fork(self) -> None:
        # A forked child: the parent's threads do not exist here, its locks may be held
        # forever and its queue is the parent's work. Start empty.
        self._reset()

    def _reset(self) -> None:
        # Unbounded itself: the bound is on pending deliveries (queued, waiting for a retry or
        # being delivered), so a retry always finds room and memory stays bounded.
        self._queue: queue.PriorityQueue[tuple[int, int, Delivery | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._retries: list[tuple[float, int, Delivery]] = []
        self._workers: set[threading.Thread] = set()
        self._inflight: dict[threading.Thread, Delivery] = {}
        #: Deliveries whose asynchronous attempt has not answered yet.
        self._async: set[Delivery] = set()
        #: Deliveries workers took from the queue after shutdown began, handed back.
        self._late: list[Delivery] = []
        self._busy = 0
        self._pending = 0
        self._names = itertools.count(1)
        self._monitor: threading.Thread | None = None
        self._stopping = False
        self.peak_workers = 0
        # Queueing numbers (under the lock): arrivals, final departures, attempts with the
        # seconds they waited in the queue and the seconds they took.
        self._arrivals = self._departures = self._attempts = 0
        self._wait_sum = self._service_sum = 0.0
        # Rates and load averaged by the monitor.
        self._window = (time.monotonic(), 0, 0)
        self._rates = (0.0, 0.0)
        self._load_avg = 0.0

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, delivery: Delivery, block: bool = False, timeout: float | None = None) -> bool:
        """Queue a delivery; False when ``queue_size`` deliveries are already pending (queued,
        waiting for a retry or being delivered), after waiting ``timeout`` if ``block``."""
        if self._monitor is None or self._stopping:
            self._start()
        capacity = self.settings.queue_size
        with self._lock:
            if self._pending >= capacity and not (
                block and self._room.wait_for(lambda: self._pending < capacity, timeout)
            ):
                return False
            self._pending += 1
            self._arrivals += 1
            workers = len(self._workers)
            idle = workers - self._busy
        delivery.queued = time.monotonic()
        self._queue.put_nowait((delivery.priority, next(self._seq), delivery))
        if workers < self.settings.max_workers and self._queue.qsize() > idle:
            # More queued than idle workers: the monitor starts more now, not at its next
            # round (a burst would wait for it with one worker).
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._monitor is not None and not self._stopping:
                return
            self._stopping = False
            self._monitor = threading.Thread(
                target=self._run_monitor,
                name=f"{self.settings.thread_name_prefix}-monitor",
                daemon=True,
            )
            self._monitor.start()
            for _ in range(max(self.settings.min_workers, 1) - len(self._workers)):
                self._spawn()

    def _spawn(self) -> None:
        # Called with the lock held.
        thread = threading.Thread(
            target=self._run_worker,
            name=f"{self.settings.thread_name_prefix}-{next(self._names)}",
            daemon=True,
        )
        self._workers.add(thread)
        self.peak_workers = max(self.peak_workers, len(self._workers))
        thread.start()

    # -- workers --------------------------------------------------------------------------------

    def _run_worker(self) -> None:
        me = threading.current_thread()
        while (delivery := self._next(me)) is not None:
            started = time.monotonic()
            with self._lock:
                if self._stopping:  # shutting down: hand it back instead of starting it
                    self._late.append(delivery)
                    continue
                self._busy += 1
                self._inflight[me] = delivery
                self._wait_sum += started - delivery.queued
            outcome = self._attempt(delivery)
            with self._lock:
                self._busy -= 1
                del self._inflight[me]
                self._attempts += 1
                self._service_sum += time.monotonic() - started
                if outcome is not IN_FLIGHT:  # else expect() took note, resolve() settles it
                    self._settle(delivery, outcome)
            if type(outcome) is RetryAfter:
                self._wake.set()

    def _next(self, me: threading.Thread) -> Delivery | None:
        """The next delivery to attempt; None when this worker is to end (stopping, or idle
        with more than ``min_workers`` workers left)."""
        settings = self.settings
        while True:
            try:
                delivery = self._queue.get(timeout=settings.idle_timeout)[2]
            except queue.Empty:
                with self._lock:
                    if self._stopping or len(self._workers) > settings.min_workers:
                        self._workers.discard(me)
                        return None
                continue
            if delivery is None:  # a sentinel: the dispatcher is stopping
                with self._lock:
                    self._workers.discard(me)
            return delivery

    @staticmethod
    def _attempt(delivery: Delivery) -> Outcome | RetryAfter:
        try:
            return delivery.sender.attempt(delivery)
        except Exception as exc:  # attempt() must not raise; never lose the worker
            logger.exception("delivery by listener %r crashed", delivery.name)
            delivery.finish("failed", exc)
            return FINAL

    def _settle(self, delivery: Delivery, outcome: Outcome | RetryAfter) -> None:
        # Called with the lock held: a final outcome, or a retry to schedule.
        if type(outcome) is not RetryAfter:
            # max(): a delivery still in flight at shutdown was already let go of.
            self._pending = max(0, self._pending - 1)
            self._departures += 1
            self._room.notify()
            if self._pending == 0:
                self._drained.notify_all()
        elif self._stopping:  # shutting down: hand it back with the other leftovers
            self._late.append(delivery)
        else:
            due = time.monotonic() + outcome.delay
            heapq.heappush(self._retries, (due, next(self._seq), delivery))

    def track(self, delivery: Delivery) -> None:
        """Count a delivery that starts outside the queue (an asynchronous listener's
        pipeline); its outcome comes through :meth:`resolve`."""
        if self._monitor is None or self._stopping:
            self._start()
        with self._lock:
            self._pending += 1
            self._arrivals += 1

    def expect(self, delivery: Delivery) -> None:
        """Note an asynchronous attempt that has started (before it can answer)."""
        with self._lock:
            self._async.add(delivery)

    def resolve(self, delivery: Delivery, outcome: Outcome | RetryAfter) -> None:
        """The outcome of an asynchronous attempt: final, or a retry after a delay."""
        with self._lock:
            self._async.discard(delivery)
            self._settle(delivery, outcome)
        if type(outcome) is RetryAfter:
            self._wake.set()

    # -- the monitor: due retries and scaling ---------------------------------------------------

    def _run_monitor(self) -> None:
        interval = self.settings.monitor_interval
        measured = time.monotonic()
        while not self._stopping:
            with self._lock:
                wait = max(0.0, measured + interval - time.monotonic())
                if self._retries:
                    wait = min(wait, max(0.0, self._retries[0][0] - time.monotonic()))
            # Woken early by a retry that is due, or a submit finding no idle worker.
            self._wake.wait(wait)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._requeue_due()
                self._scale()
                if time.monotonic() - measured >= interval:  # the averages: once a round
                    measured = time.monotonic()
                    self._measure()
            except Exception:
                logger.exception("dispatcher monitor failed; it goes on")

    def _requeue_due(self) -> None:
        now = time.monotonic()
        # Under the lock, so shutdown finds each delivery either here or in the queue.
        with self._lock:
            while self._retries and self._retries[0][0] <= now and not self._stopping:
                _, seq, delivery = heapq.heappop(self._retries)
                delivery.queued = now
                self._queue.put_nowait((delivery.priority, seq, delivery))

    def _scale(self) -> None:
        depth = self._queue.qsize()
        with self._lock:
            if self._stopping:
                return
            workers = len(self._workers)
            idle = workers - self._busy
            want = min(self.settings.max_workers, workers + max(0, depth - idle))
            want = max(want, self.settings.min_workers)
            for _ in range(want - workers):
                self._spawn()

    def _measure(self) -> None:
        """Update the arrival/departure rates (over about a second) and the load average."""
        now = time.monotonic()
        with self._lock:
            load = self._busy / len(self._workers) if self._workers else 0.0
            since, arrivals, departures = self._window
            elapsed = now - since
            # An exponentially weighted average over about a minute, like a Unix load average.
            self._load_avg += (load - self._load_avg) * min(
                1.0, self.settings.monitor_interval / LOAD_WINDOW
            )
            if elapsed >= 1.0:
                self._rates = (
                    (self._arrivals - arrivals) / elapsed,
                    (self._departures - departures) / elapsed,
                )
                self._window = (now, self._arrivals, self._departures)

    # -- waiting and stopping -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted delivery is final; False if ``timeout`` ran out first."""
        with self._lock:
            return self._drained.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self, timeout: float) -> list[Delivery]:
        """Flush for up to ``timeout`` seconds, stop the threads, return what is not final.

        The returned deliveries were queued, waiting for a retry, or still being delivered
        when the time ran out (those may yet succeed: delivery is at least once).
        """
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            self._stopping = True
            leftovers = [item[2] for item in self._retries]
            self._retries.clear()
            workers = list(self._workers)
        self._wake.set()
        # Workers hand back what they take from now on (see _run_worker) and end at their
        # sentinel, which sorts after every delivery.
        for _ in workers:
            self._queue.put((_STOP, next(self._seq), None))
        for thread in workers:
            thread.join(max(0.05, deadline - time.monotonic()))
        with self._lock:
            while True:
                try:
                    item = self._queue.get_nowait()[2]
                except queue.Empty:
                    break
                if item is not None:
                    leftovers.append(item)
            leftovers.extend(self._late)
            self._late.clear()
            # Still being delivered: kept too, they may yet succeed (at least once).
            leftovers.extend(self._inflight.values())
            leftovers.extend(self._async)
            self._async.clear()
            self._pending = 0
            self._monitor = None
            self._drained.notify_all()
            self._room.notify_all()
        return [d for d in leftovers if not d.done]

    def stats(self) -> dict[str, Any]:
        """The queue and the workers, as plain numbers.

        ``queued`` (in the queue now), ``capacity``, ``scheduled_retries``, ``pending`` (not
        final yet), ``workers``, ``busy``, ``peak_workers``, ``arrivals`` and ``departures``
        (deliveries in and final, since start), ``arrival_rate`` and ``departure_rate`` (per
        second, over the last second or so), ``avg_wait`` (seconds an attempt waited in the
        queue) and ``avg_service`` (seconds an attempt took), ``load`` (busy / workers) and
        ``load_avg`` (its moving average over about a minute).
        """
        with self._lock:
            workers = len(self._workers)
            attempts = self._attempts
            return {
                "queued": self._queue.qsize(),
                "capacity": self.settings.queue_size,
                "scheduled_retries": len(self._retries),
                "pending": self._pending,
                "workers": workers,
                "busy": self._busy,
                "peak_workers": self.peak_workers,
                "arrivals": self._arrivals,
                "departures": self._departures,
                "arrival_rate": self._rates[0],
                "departure_rate": self._rates[1],
                "avg_wait": self._wait_sum / attempts if attempts else 0.0,
                "avg_service": self._service_sum / attempts if attempts else 0.0,
                "load": self._busy / workers if workers else 0.0,
                "load_avg": self._load_avg,
            }
