"""A small bounded pool of reusable connections: thread-safe, fork-safe, generic.

It keeps pika-pool's semantics (``QueuedPool``, ``max_size``, ``max_overflow``, ``timeout``,
``recycle``, ``stale``; items used as ``with pool.acquire() as item:`` and invalidated when the
block raises a connection error) for any resource, without importing a driver. On top of that:

- ``is_alive(item)`` is asked before an idle item is handed out (only after it was idle
  ``check_after`` seconds, if given, to keep a busy pool fast); a dead one is closed and
  another taken (or created);
- :meth:`QueuedPool.sweep` walks the idle items one at a time, each checked out exclusively,
  so a heartbeat can keep them alive and drop the dead ones;
- :meth:`QueuedPool.close` closes the idle items now and the ones in use when they come back;
  the pool stays usable and opens new items afterwards;
- after ``os.fork()`` the child forgets the parent's items *without closing them* (closing
  would talk on the parent's sockets, e.g. send AMQP ``Connection.Close``) and gets new locks
  (:mod:`eventisc._fork`); an item lent before the fork and given back in the child is
  forgotten too;
- :meth:`QueuedPool.stats` counts open, idle and in-use items for observability.

Items are handed out most recently used first, so a quiet period lets the extra ones go stale
while the busy ones stay warm.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._fork import register
from .errors import EventiscError

__all__ = ["PoolEntry", "PoolError", "PoolStats", "PoolTimeout", "QueuedPool"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PoolError(EventiscError):
    """Base class of the pool's own errors."""


class PoolTimeout(PoolError, TimeoutError):
    """Every item was in use (``max_size + max_overflow``) and none came back in time."""


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a pool's counters.

    ``open`` counts every item that exists (idle, in use or being created); ``peak_open`` is
    the highest ``open`` ever reached; ``created`` and ``closed`` count items over the pool's
    life (items forgotten after a fork are not counted as closed); ``waiting`` is the number of
    threads waiting for an item.
    """

    open: int
    idle: int
    in_use: int
    waiting: int
    peak_open: int
    created: int
    closed: int
    max_size: int
    max_overflow: int


class PoolEntry(Generic[T]):
    """One pooled item (``item``) and what the pool knows about it; see :meth:`checkout`."""

    __slots__ = ("item", "created", "released", "pid", "generation")

    def __init__(self, item: T, now: float, pid: int, generation: int):
        self.item = item
        self.created = now
        self.released = now
        self.pid = pid
        self.generation = generation


def _released(entry: PoolEntry[Any]) -> float:
    return entry.released


def _close_item(item: Any) -> None:
    item.close()


class QueuedPool(Generic[T]):
    """A bounded pool of items made by ``create()``.

    - at most ``max_size`` idle items are kept; up to ``max_size + max_overflow`` exist at
      once; when all are in use, :meth:`acquire` waits up to ``timeout`` seconds (None: no
      limit) for one to come back, then raises :class:`PoolTimeout`;
    - ``recycle``: items older than this many seconds are closed instead of reused;
    - ``stale``: items idle longer than this many seconds are closed instead of reused;
    - ``is_alive(item)``: checked before an idle item is handed out (an exception counts as
      dead); with ``check_after``, only for items idle at least that many seconds;
    - ``invalidates(exc)``: whether an exception raised inside ``with pool.acquire()`` means
      the item is broken; if so it is closed instead of returned (default: every exception);
    - ``close(item)``: how to close an item (default ``item.close()``); its errors are logged
      at debug level and ignored.

    ``create`` runs outside the pool's lock; when it raises, the slot is given back and the
    exception propagates to the caller of :meth:`acquire`. Thread-safe and fork-safe.
    """

    def __init__(
        self,
        create: Callable[[], T],
        *,
        max_size: int = 10,
        max_overflow: int = 10,
        timeout: float | None = 30.0,
        recycle: float | None = None,
        stale: float | None = None,
        is_alive: Callable[[T], bool] | None = None,
        check_after: float = 0.0,
        invalidates: Callable[[BaseException], bool] | None = None,
        close: Callable[[T], None] = _close_item,
        name: str = "pool",
    ):
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size!r}")
        if max_overflow < 0:
            raise ValueError(f"max_overflow must be 0 or more, got {max_overflow!r}")
        for option, value in (("timeout", timeout), ("recycle", recycle), ("stale", stale)):
            if value is not None and value < 0:
                raise ValueError(f"{option} must be None or 0 or more, got {value!r}")
        self.max_size = max_size
        self.max_overflow = max_overflow
        self.timeout = timeout
        self.recycle = recycle
        self.stale = stale
        self.name = name
        self._create = create
        self._is_alive = is_alive
        self.check_after = check_after
        self._plain = is_alive is None and recycle is None and stale is None
        self._invalidates = invalidates
        self._close = close
        self._max_open = max_size + max_overflow
        self._reset()
        register(self)

    def _reset(self) -> None:
        """Start empty, with new locks (at creation, and in a child process after a fork)."""
        self._pid = os.getpid()
        # One lock; the condition (slower to enter) is only used to wait and wake waiters.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[PoolEntry[T]] = []  # sorted by release time; the last is the newest
        self._open = 0
        self._in_use = 0
        self._waiting = 0
        self._peak_open = 0
        self._created = 0
        self._closed = 0
        self._generation = 0

    def _after_fork(self) -> None:
        # The parent's items share their sockets with the parent: drop every reference to
        # them without closing anything, so the parent's connections are not disturbed.
        self._reset()

    # -- acquiring -------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> _Lease[T]:
        """Return a context manager lending one item: ``with pool.acquire() as item: ...``.

        ``timeout`` overrides the pool's ``timeout`` for this call. Raises
        :class:`PoolTimeout` when no item is free in time, or what ``create()`` raised.
        """
        return _Lease(self, self.timeout if timeout is None else timeout)

    def checkout(self, timeout: float | None = None) -> PoolEntry[T]:
        """Take an item out without a ``with`` block (a little faster); its ``item`` is the item.

        Give it back with :meth:`checkin` exactly once, ``broken=True`` to close it. Raises like
        :meth:`acquire`.
        """
        return self._checkout(self.timeout if timeout is None else timeout)

    def checkin(self, entry: PoolEntry[T], *, broken: bool = False) -> None:
        """Give back an entry from :meth:`checkout`; ``broken`` closes it instead of keeping it."""
        if broken:
            self._discard(entry)
        else:
            self._checkin(entry)

    def _checkout(self, timeout: float | None) -> PoolEntry[T]:
        deadline: float | None = None
        while True:
            entry, deadline = self._take(timeout, deadline)
            if entry is None:
                return self._new_entry()
            if self._plain or self._usable(entry):  # plain: the common case, one test
                return entry
            self._discard(entry)

    def _take(
        self, timeout: float | None, deadline: float | None
    ) -> tuple[PoolEntry[T] | None, float | None]:
        """An idle entry, or None with a slot taken to create one; waits for either (up to
        ``timeout``, the deadline computed on the first wait and returned)."""
        with self._lock:
            while True:
                if self._idle:
                    self._in_use += 1
                    return self._idle.pop(), deadline
                if self._open < self._max_open:
                    self._open += 1
                    self._in_use += 1
                    if self._open > self._peak_open:
                        self._peak_open = self._open
                    return None, deadline
                deadline = self._wait(timeout, deadline)

    def _wait(self, timeout: float | None, deadline: float | None) -> float | None:
        # Called with the lock held, every item in use: wait for one to come back.
        now = time.monotonic()
        if timeout is not None:
            if deadline is None:
                deadline = now + timeout
            elif now >= deadline:
                raise PoolTimeout(
                    f"{self.name}: all {self._max_open} items in use (max_size={self.max_size}, "
                    f"max_overflow={self.max_overflow}), none freed within {timeout:g}s"
                )
        self._waiting += 1
        try:
            self._cond.wait(None if deadline is None else deadline - now)
        finally:
            self._waiting -= 1
        return deadline

    def _new_entry(self) -> PoolEntry[T]:
        try:
            item = self._create()
        except BaseException:
            with self._lock:
                self._open -= 1
                self._in_use -= 1
                if self._waiting:
                    self._cond.notify()
            raise
        with self._lock:
            self._created += 1
            generation = self._generation
        return PoolEntry(item, time.monotonic(), self._pid, generation)

    def _expired(self, entry: PoolEntry[T], now: float) -> bool:
        if self.recycle is not None and now - entry.created > self.recycle:
            return True
        return self.stale is not None and now - entry.released > self.stale

    def _usable(self, entry: PoolEntry[T]) -> bool:
        now = time.monotonic()
        if self._expired(entry, now):
            return False
        if self._is_alive is None or now - entry.released < self.check_after:
            return True
        try:
            return bool(self._is_alive(entry.item))
        except Exception:
            logger.debug("%s: liveness check raised; dropping the item", self.name, exc_info=True)
            return False

    # -- giving back -----------------------------------------------------------------------

    def _checkin(self, entry: PoolEntry[T], *, touch: bool = True) -> None:
        if entry.pid != self._pid:
            return  # lent before a fork: the parent owns it; forget it, never close it
        now = time.monotonic()
        with self._lock:
            self._in_use -= 1
            keep = (
                entry.generation == self._generation
                and len(self._idle) < self.max_size
                and (self.recycle is None or now - entry.created <= self.recycle)
            )
            if keep:
                if touch:
                    entry.released = now
                    self._idle.append(entry)
                else:
                    bisect.insort(self._idle, entry, key=_released)
            else:
                self._open -= 1
            if self._waiting:
                self._cond.notify()
        if not keep:
            self._close_entry(entry)

    def _discard(self, entry: PoolEntry[T]) -> None:
        """Close an item that is checked out, and give its slot back."""
        if entry.pid != self._pid:
            return
        with self._lock:
            self._in_use -= 1
            self._open -= 1
            if self._waiting:
                self._cond.notify()
        self._close_entry(entry)

    def _close_entry(self, entry: PoolEntry[T]) -> None:
        with self._lock:
            self._closed += 1
        try:
            self._close(entry.item)
        except Exception:
            logger.debug("%s: closing an item failed", self.name, exc_info=True)

    # -- maintenance -----------------------------------------------------------------------

    def sweep(self, probe: Callable[[T], bool] | None = None) -> int:
        """Check each idle item, one at a time and exclusively; close the dead or expired ones.

        ``probe(item)`` may use the item (a heartbeat, a ping) and returns whether it is still
        alive (an exception counts as dead). Items in use are left alone. Returns how many
        items were closed.
        """
        with self._lock:
            snapshot = list(self._idle)
        dropped = 0
        for entry in snapshot:
            with self._lock:
                try:
                    self._idle.remove(entry)
                except ValueError:
                    continue  # taken by another thread meanwhile: it is in use, so alive
                self._in_use += 1
            alive = not self._expired(entry, time.monotonic())
            if alive and probe is not None:
                try:
                    alive = bool(probe(entry.item))
                except Exception:
                    logger.debug("%s: probe raised; dropping the item", self.name, exc_info=True)
                    alive = False
            if alive:
                self._checkin(entry, touch=False)
            else:
                self._discard(entry)
                dropped += 1
        return dropped

    def close(self) -> None:
        """Close the idle items now, and the items in use when they are given back.

        The pool stays usable: a later :meth:`acquire` creates new items. Idempotent.
        """
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for entry in idle:
            self._close_entry(entry)

    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters (see :class:`PoolStats`)."""
        with self._lock:
            return PoolStats(
                open=self._open,
                idle=len(self._idle),
                in_use=self._in_use,
                waiting=self._waiting,
                peak_open=self._peak_open,
                created=self._created,
                closed=self._closed,
                max_size=self.max_size,
                max_overflow=self.max_overflow,
            )

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<QueuedPool {self.name!r} open={s.open} idle={s.idle} in_use={s.in_use} "
            f"max_size={self.max_size} max_overflow={self.max_overflow}>"
        )


class _Lease(Generic[T]):
    """What :meth:`QueuedPool.acquire` returns: lends one item for a ``with`` block."""

    __slots__ = ("_pool", "_timeout", "_entry")

    def __init__(self, pool: QueuedPool[T], timeout: float | None):
        self._pool = pool
        self._timeout = timeout
        self._entry: PoolEntry[T] | None = None

    def __enter__(self) -> T:
        self._entry = entry = self._pool._checkout(self._timeout)
        return entry.item

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry, self._entry = self._entry, None
        if entry is None:
            return
        pool = self._pool
        if exc is not None and (pool._invalidates is None or pool._invalidates(exc)):
            pool._discard(entry)
        else:
            pool._checkin(entry)
