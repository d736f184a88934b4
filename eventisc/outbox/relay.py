"""Relays: deliver the outbox table's committed rows with an app's listeners.

A :class:`Relay` loops on one thread of its own:

1. claim as many due rows as it has room for (``concurrency`` minus the rows in hand, at most
   ``batch``) with a lease, in a statement of its own, and start delivering them
   (:mod:`.deliveries`): no transaction stays open while it delivers;
2. write the outcomes of finished deliveries in one short transaction (delivered rows
   deleted, or kept as ``delivered`` with ``retain_delivered``; retries due after the policy's
   delay; dead rows), or keep them in memory when PostgreSQL cannot be reached;
3. wait for an outcome, a NOTIFY of committed rows (:mod:`.waking`), a due retry or the slow
   poll.

It claims again at once only when there may be more to claim, else at the slow poll
(:mod:`.schedule`). An idle relay makes two queries (a claim and ``next_due``) per ``poll``
seconds, a claim a second while due rows are held back by an earlier row of their ordering key,
and one backlog query per report.

Faults: PostgreSQL unreachable or restarted, the relay logs it, tries again after a growing
pause (up to 5 s), keeps the outcomes it could not write and writes them when it is back; the
deliveries in hand go on meanwhile. Stopping (:meth:`Relay.stop`, SIGTERM, SIGINT): it claims no
more, gives back the leases of rows claimed but not started, lets what is in flight finish for up
to ``shutdown_timeout`` seconds while it writes their outcomes, and returns. A relay killed
outright leaves its rows leased until the lease runs out; then any relay delivers them again,
with the same notification id.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any

from .._fork import register
from ..errors import ConfigError, OutboxError
from ..masking import mask_url
from ..settings import check_count, check_seconds
from .claims import Claims, Outage, Outcomes, Row
from .deliveries import Deliveries
from .schedule import Schedule
from .waking import NotifyWaker

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Relay", "Row"]

logger = logging.getLogger(__name__)

#: Seconds between purges of delivered rows kept for ``retain_delivered`` (or less, when
#: ``retain_delivered`` is shorter).
PURGE_INTERVAL = 60.0


class Relay:
    """Delivers an app's outbox rows (see the module docstring).

    ``concurrency`` (default: the ``outbox`` setting) bounds the rows in hand, pipelined
    publishes included; ``once`` makes :meth:`run` return when no row is due;
    ``report_interval`` is the seconds between INFO lines with the counts and the backlog (0:
    none). ``via="celery"`` hands each row to the Celery workers (``delivery: celery``)
    instead of delivering it; the row is deleted once the broker took the task.
    :meth:`stop` may be called from any thread; :meth:`stats` too.
    Raises ConfigError when the app has no ``outbox``.
    """

    def __init__(
        self,
        app: App,
        *,
        concurrency: int | None = None,
        once: bool = False,
        report_interval: float = 60.0,
        via: str | None = None,
    ):
        settings = app.outbox_settings
        if settings is None:
            raise ConfigError("a relay needs the `outbox` settings (its PostgreSQL url)", "outbox")
        self.settings = settings
        self.concurrency = settings.concurrency if concurrency is None else concurrency
        check_count("concurrency", self.concurrency, 1)
        check_seconds("report_interval", report_interval, zero=True)
        self.once = once
        self.report_interval = report_interval
        self.relay_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        skip_dead = [listener.name for listener in app.listeners if listener.on_dead == "skip"]
        self.outcomes = Outcomes()
        self.claims = Claims(settings, self.relay_id, skip_dead)
        self.app = app
        if via not in (None, "celery"):
            raise ConfigError(f"must be celery (or unset), not {via!r}", "via")
        self.deliveries = Deliveries(
            app.relay_senders if via is None else app.handoff_senders,
            self.outcomes,
            concurrency=self.concurrency,
            batch=settings.batch,
            wake=self._woken,
            name="eventisc-relay",
        )
        self.waker = NotifyWaker(settings, self._notified, "eventisc-relay-listen")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._hurry = False
        self._reset_state()
        register(self)

    def _reset_state(self) -> None:
        now = monotonic()
        self.schedule = Schedule(self.settings.poll, now, self.once)
        self.outage = Outage(f"outbox relay {self.relay_id}")
        self._report_at = now + self.report_interval if self.report_interval else math.inf
        retain = self.settings.retain_delivered
        self._purge_at = now if retain else math.inf
        self._to_release: list[int] = []
        self._claimed = self._claims = self._released = self._written = 0
        self._reported = (0, 0, 0, 0)

    def reload(self) -> dict[str, list[str]] | None:
        """Load the app's config again (:meth:`eventisc.App.reload`) and deliver the next rows
        with the new listeners; on a ConfigError the relay goes on as it was, and the error
        is logged. Returns what changed (None on error)."""
        try:
            changes = self.app.reload()
        except ConfigError as exc:
            logger.error("outbox relay %s: reload failed, config kept: %s", self.relay_id, exc)
            return None
        self.deliveries.rewire()
        return changes

    def _after_fork(self) -> None:
        # A forked child: the parent's connections, threads and deliveries are not its own.
        self.claims.forget()
        self.deliveries.after_fork()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopping.set()

    # -- running ------------------------------------------------------------------------------

    def run(self, *, install_signals: bool = False) -> int:
        """Deliver until stopped (or, with ``once``, until no row is due); the exit status: 0,
        or 1 when outcomes could not be written before it stopped (PostgreSQL unreachable:
        those rows are delivered again after their lease, with the same id).

        With ``install_signals`` and on the main thread, SIGTERM and SIGINT stop it (a second
        one stops waiting for deliveries in flight). A relay runs once: make a new one to run
        again."""
        logger.info(
            "outbox relay %s: delivering rows of %s at %s (concurrency %d, batch %d, lease %g s)",
            *(self.relay_id, self.settings.table, mask_url(self.settings.url)),
            *(self.concurrency, self.settings.batch, self.settings.lease),
        )
        with _signals(self, install_signals):
            if not self.once:  # once claims after every outcome: no need to be woken
                self.waker.start()
            try:
                self._loop()
            finally:
                status = self._end()
        return status

    def stop(self, *, drain: bool = True) -> None:
        """Stop claiming and return from :meth:`run` once what is in flight is done (for up to
        ``shutdown_timeout`` seconds; ``drain=False``: at once). Any thread."""
        if not drain:
            self._hurry = True
        self._stopping.set()
        self._wake.set()

    def _woken(self) -> None:
        self._wake.set()

    def _notified(self) -> None:
        self.schedule.wake()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._step() and self.once:
                return
            timeout = self._sleep_time()
            if timeout > 0:
                self._wake.wait(timeout)
            self._wake.clear()

    def _step(self) -> bool:
        """One round: a claim, outcomes written, housekeeping. True when nothing was due and
        nothing is left in hand (``once`` is done)."""
        if self.outage.wait(monotonic()):
            return False
        try:
            done = self._claim()  # first: the workers that finished wait for rows
            self._write()
            self._housekeeping()
        except OutboxError as exc:
            self._db_lost(exc)
            return False
        self._db_back()
        return done

    def _sleep_time(self) -> float:
        now = monotonic()
        down = self.outage.wait(now)
        if down:
            return down
        if len(self.outcomes):
            return 0.0
        wait = min(self._report_at, self._purge_at) - now
        if self.deliveries.room() > 0:
            wait = min(wait, self.schedule.wait(now))
        return max(0.0, min(wait, self.settings.poll))

    # -- the table ----------------------------------------------------------------------------

    def _claim(self) -> bool:
        room = min(self.deliveries.room(), self.settings.batch)
        if room <= 0 or not self.schedule.due(monotonic()):
            return False
        try:
            rows = self.claims.claim(room)
        except OutboxError:
            self.schedule.wake()  # the claim did not happen
            raise
        self._claims += 1
        self._claimed += len(rows)
        if self._stopping.is_set():  # stopped while claiming: never start them
            self._to_release += [row.seq for row in rows]
            return False
        self.deliveries.start(rows)
        self.schedule.claimed(len(rows), room)
        if rows:
            return False
        self.schedule.found_none(self.claims.next_due, monotonic())
        return self.deliveries.in_hand == 0 and not len(self.outcomes)

    def _housekeeping(self) -> None:
        now = monotonic()
        if now >= self._report_at:
            self._report_at = now + self.report_interval
            self._report()
        if now >= self._purge_at:
            self._purge_at = now + min(PURGE_INTERVAL, max(1.0, self.settings.retain_delivered))
            purged = self.claims.purge()
            if purged:
                logger.debug("outbox relay %s: purged %d delivered row(s)", self.relay_id, purged)

    def _report(self) -> None:
        pending, dead, age = self.claims.backlog()
        counts = (self._claimed, self.outcomes.delivered, self.outcomes.retried, self.outcomes.dead)
        claimed, delivered, retried, died = (
            n - m for n, m in zip(counts, self._reported, strict=True)
        )
        self._reported = counts
        logger.info(
            "outbox relay %s: claimed=%d delivered=%d retried=%d dead=%d in the last %g s, "
            "in flight=%d; backlog of %s: pending=%d dead=%d oldest pending %.1f s",
            *(self.relay_id, claimed, delivered, retried, died, self.report_interval),
            *(self.deliveries.in_hand, self.settings.table, pending, dead, age),
        )

    # -- PostgreSQL unreachable ---------------------------------------------------------------

    def _db_lost(self, error: OutboxError) -> None:
        detail = (
            f"outcomes kept to write later: {len(self.outcomes)}, deliveries in hand: "
            f"{self.deliveries.in_hand}"
        )
        self.outage.failed(error, detail, monotonic())

    def _db_back(self) -> None:
        if self.outage.answered(monotonic()):
            self.schedule.wake()  # notifications sent meanwhile are lost

    # -- stopping -----------------------------------------------------------------------------

    def _end(self) -> int:
        self._stopping.set()
        self.deliveries.stop()
        self._drain(monotonic() + self.settings.shutdown_timeout)
        self.waker.stop()
        self.deliveries.close()
        self.claims.drop()
        left, unwritten = self.deliveries.in_hand, len(self.outcomes)
        if left:
            logger.warning(
                "outbox relay %s: deliveries still in flight after %g s: %d; their rows are "
                "delivered again once their lease runs out (same notification id)",
                *(self.relay_id, self.settings.shutdown_timeout, left),
            )
        if unwritten or self._to_release:
            logger.warning(
                "outbox relay %s: %d outcome(s) could not be written and %d lease(s) not given "
                "back (PostgreSQL unreachable); those rows are delivered again once their lease "
                "runs out (same notification id)",
                *(self.relay_id, unwritten, len(self._to_release)),
            )
        self._close_listeners()
        logger.info("outbox relay %s: stopped; %s", self.relay_id, _counts(self.stats()))
        return 1 if unwritten else 0

    def _drain(self, deadline: float) -> None:
        """Until ``deadline``: give back unstarted rows, write outcomes, wait for those in
        flight."""
        while True:
            self._settle()
            idle = self.deliveries.in_hand == 0
            if idle and not len(self.outcomes) and not self._to_release:
                return
            now = monotonic()
            if self._hurry or now >= deadline:
                return
            wait = deadline - now
            if idle or len(self.outcomes):  # only PostgreSQL to wait for
                wait = min(wait, self.outage.wait(now))
            self._wake.wait(wait)
            self._wake.clear()

    def _settle(self) -> None:
        if self.outage.wait(monotonic()):
            return
        try:
            self._release()
            self._write()
        except OutboxError as exc:
            self._db_lost(exc)
            return
        self._db_back()

    def _write(self) -> None:
        batch = self.outcomes.take()
        if not batch:
            return
        try:
            self.claims.write(batch, self.settings.retain_delivered > 0)
        except OutboxError:
            self.outcomes.put_back(batch)
            raise
        self._written += len(batch)
        delays = [delay for _, delay, _ in batch.retries]
        self.schedule.written(batch.unblocks, delays, monotonic())

    def _release(self) -> None:
        self._to_release += self.deliveries.unstarted()
        if not self._to_release:
            return
        self.claims.release(self._to_release)
        self._released += len(self._to_release)
        self._to_release = []

    def _close_listeners(self) -> None:
        for sender, _ in self.deliveries.senders.values():
            try:
                sender.listener.close()
            except Exception:
                logger.exception("closing listener %r failed", sender.listener.name)

    # -- looking in ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """This relay's numbers since it started, as a plain dict: ``claimed`` rows,
        ``delivered``, ``retried`` and ``dead`` outcomes, ``released`` leases, ``in_flight``
        rows, ``unwritten`` outcomes (PostgreSQL unreachable), ``written`` outcomes, ``claims``
        and ``queries`` (statements run), whether the ``database`` answers and the relay is
        ``listening``, and the ``circuits`` of its listeners' breakers. Any thread."""
        return {
            "relay": self.relay_id,
            "table": self.settings.table,
            "concurrency": self.concurrency,
            "claimed": self._claimed,
            "delivered": self.outcomes.delivered,
            "retried": self.outcomes.retried,
            "dead": self.outcomes.dead,
            "released": self._released,
            "in_flight": self.deliveries.in_hand,
            "unwritten": len(self.outcomes),
            "written": self._written,
            "claims": self._claims,
            "queries": self.claims.queries,
            "database": "down" if self.outage.since is not None else "up",
            "listening": self.waker.listening,
            "circuits": {
                name: breaker.snapshot()
                for name, (_, breaker) in sorted(self.deliveries.senders.items())
                if breaker is not None
            },
        }

    def __repr__(self) -> str:
        return f"<Relay {self.relay_id} table={self.settings.table}>"


def _counts(stats: dict[str, Any]) -> str:
    keys = ("claimed", "delivered", "retried", "dead", "released")
    return " ".join(f"{key}={stats[key]}" for key in keys)


@contextmanager
def _signals(relay: Relay, install: bool) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``relay`` while in this block (the main thread only); a second
    one stops it without waiting for deliveries in flight. SIGHUP reloads its config."""
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.getsignal(signal.SIGHUP)

    def handler(signum: int, frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None):  # reload, off the signal handler
            threading.Thread(target=relay.reload, name="eventisc-relay-reload").start()
            return
        again = relay._stopping.is_set()
        logger.info(
            "outbox relay %s: %s%s; stopping",
            *(relay.relay_id, signal.Signals(signum).name, " again" if again else ""),
        )
        relay.stop(drain=not again)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
