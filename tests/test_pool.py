"""QueuedPool: bounds, reuse, expiry, invalidation, sweep, close, threads and fork.

The items are a small fake resource that records when it is closed (and in which process):
the pool is generic, so this is the real thing it manages, not a stand-in for a driver.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from eventisc.pool import PoolStats, PoolTimeout, QueuedPool

from .support import wait_for_child


class Resource:
    def __init__(self, number: int, log: Path | None = None):
        self.number = number
        self.closed = False
        self.alive = True
        self.log = log

    def close(self) -> None:
        self.closed = True
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(f"{os.getpid()} closed {self.number}\n")

    def __repr__(self) -> str:
        return f"<Resource {self.number}{' closed' if self.closed else ''}>"


class Factory:
    def __init__(self, log: Path | None = None):
        self.made: list[Resource] = []
        self.fail: Exception | None = None
        self.log = log
        self.lock = threading.Lock()

    def __call__(self) -> Resource:
        if self.fail is not None:
            raise self.fail
        with self.lock:
            resource = Resource(len(self.made) + 1, self.log)
            self.made.append(resource)
        return resource


def make_pool(**options: object) -> tuple[QueuedPool[Resource], Factory]:
    factory = Factory()
    return QueuedPool(factory, **options), factory  # type: ignore[arg-type]


def test_an_idle_item_is_reused() -> None:
    pool, factory = make_pool()
    with pool.acquire() as first:
        pass
    with pool.acquire() as second:
        assert pool.stats().in_use == 1
    assert first is second
    assert len(factory.made) == 1
    assert pool.stats() == PoolStats(
        open=1, idle=1, in_use=0, waiting=0, peak_open=1, created=1, closed=0,
        max_size=10, max_overflow=10,
    )  # fmt: skip


def test_at_most_max_size_idle_items_are_kept() -> None:
    pool, factory = make_pool(max_size=2, max_overflow=1)
    leases = [pool.acquire() for _ in range(3)]
    items = [lease.__enter__() for lease in leases]
    assert pool.stats().open == 3
    for lease in leases:
        lease.__exit__(None, None, None)
    assert [r.closed for r in items] == [False, False, True]  # the overflow one is closed
    stats = pool.stats()
    assert (stats.open, stats.idle, stats.in_use, stats.closed) == (2, 2, 0, 1)


def test_acquire_waits_then_times_out_when_all_are_in_use() -> None:
    pool, _ = make_pool(max_size=1, max_overflow=1, timeout=0.2)
    with pool.acquire(), pool.acquire():
        started = time.monotonic()
        with pytest.raises(PoolTimeout, match="all 2 items in use"):
            with pool.acquire():
                pass
        assert 0.15 < time.monotonic() - started < 1.0
        with pytest.raises(PoolTimeout):  # timeout=0: do not wait at all
            pool.acquire(timeout=0).__enter__()
    assert pool.stats().open == 1  # max_size=1: the overflow item was closed on release


def test_a_waiting_thread_gets_the_item_given_back() -> None:
    pool, factory = make_pool(max_size=1, max_overflow=0, timeout=5)
    got: list[Resource] = []
    lease = pool.acquire()
    held = lease.__enter__()

    def wait_for_it() -> None:
        with pool.acquire() as item:
            got.append(item)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    deadline = time.monotonic() + 5
    while pool.stats().waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.stats().waiting == 1
    lease.__exit__(None, None, None)
    thread.join(5)
    assert got == [held]
    assert len(factory.made) == 1


def test_recycle_closes_old_items() -> None:
    pool, factory = make_pool(recycle=0.05)
    with pool.acquire() as first:
        pass
    time.sleep(0.08)
    with pool.acquire() as second:
        pass
    assert second is not first and first.closed
    assert len(factory.made) == 2


def test_an_item_too_old_on_release_is_closed_not_kept() -> None:
    pool, _ = make_pool(recycle=0.05)
    with pool.acquire() as item:
        time.sleep(0.08)
    assert item.closed
    assert pool.stats().open == 0


def test_stale_discards_items_idle_too_long() -> None:
    pool, factory = make_pool(stale=0.05)
    with pool.acquire() as first:
        pass
    with pool.acquire() as again:  # just released: not stale
        pass
    assert again is first
    time.sleep(0.08)
    with pool.acquire() as fresh:
        pass
    assert fresh is not first and first.closed
    assert pool.stats().open == 1


def test_an_error_that_invalidates_closes_the_item() -> None:
    pool, factory = make_pool(invalidates=lambda exc: isinstance(exc, ConnectionError))
    with pytest.raises(ConnectionError):
        with pool.acquire() as broken:
            raise ConnectionError("lost")
    assert broken.closed
    with pytest.raises(KeyError):
        with pool.acquire() as kept:
            raise KeyError("not the connection's fault")
    assert not kept.closed
    with pool.acquire() as again:
        assert again is kept
    stats = pool.stats()
    assert (stats.open, stats.in_use, stats.created, stats.closed) == (1, 0, 2, 1)


def test_by_default_every_error_invalidates() -> None:
    pool, _ = make_pool()
    with pytest.raises(ValueError):
        with pool.acquire() as item:
            raise ValueError
    assert item.closed and pool.stats().open == 0


def test_a_dead_idle_item_is_replaced_on_acquire() -> None:
    pool, factory = make_pool(is_alive=lambda r: r.alive)
    with pool.acquire() as first:
        pass
    first.alive = False
    with pool.acquire() as second:
        pass
    assert second is not first and first.closed
    assert pool.stats().open == 1


def test_a_raising_liveness_check_counts_as_dead() -> None:
    def check(r: Resource) -> bool:
        raise OSError("probe failed")

    pool, factory = make_pool(is_alive=check)
    with pool.acquire():
        pass
    with pool.acquire():
        pass
    assert len(factory.made) == 2 and factory.made[0].closed


def test_a_failing_create_gives_its_slot_back() -> None:
    pool, factory = make_pool(max_size=1, max_overflow=0, timeout=0)
    factory.fail = ConnectionRefusedError("down")
    for _ in range(3):  # the slot is not leaked: no PoolTimeout
        with pytest.raises(ConnectionRefusedError):
            pool.acquire().__enter__()
    assert pool.stats().open == 0 and pool.stats().in_use == 0
    factory.fail = None
    with pool.acquire() as item:
        assert item.number == 1


def test_close_closes_idle_now_and_busy_ones_on_release() -> None:
    pool, factory = make_pool()
    with pool.acquire() as idle:
        pass
    lease = pool.acquire()
    busy = lease.__enter__()
    assert busy is idle  # reused
    other = pool.acquire()
    other_item = other.__enter__()
    other.__exit__(None, None, None)
    pool.close()
    assert other_item.closed and not busy.closed
    lease.__exit__(None, None, None)
    assert busy.closed
    assert pool.stats().open == 0
    with pool.acquire() as fresh:  # still usable afterwards
        assert not fresh.closed
    pool.close()
    pool.close()  # idempotent
    assert fresh.closed


def test_sweep_probes_each_idle_item_and_drops_the_dead() -> None:
    pool, factory = make_pool()
    leases = [pool.acquire() for _ in range(3)]
    a, b, c = (lease.__enter__() for lease in leases)
    for lease in leases:
        lease.__exit__(None, None, None)
    b.alive = False
    busy_lease = pool.acquire()
    busy = busy_lease.__enter__()  # the newest idle one (c) is now in use
    assert busy is c
    c.alive = False
    probed: list[Resource] = []

    def probe(r: Resource) -> bool:
        probed.append(r)
        assert pool.stats().in_use == 2  # the probed item is checked out exclusively
        return r.alive

    assert pool.sweep(probe) == 1
    assert probed == [a, b]  # never the busy one
    assert b.closed and not a.closed and not c.closed
    busy_lease.__exit__(None, None, None)
    assert pool.stats().idle == 2


def test_sweep_drops_expired_and_raising_items_and_keeps_idle_times() -> None:
    pool, factory = make_pool(stale=0.2)
    with pool.acquire() as first:
        pass
    time.sleep(0.12)
    assert pool.sweep(lambda r: True) == 0
    time.sleep(0.12)  # a sweep is not a use: the item is now idle for 0.24 s, so stale
    assert pool.sweep(lambda r: True) == 1
    assert first.closed
    with pool.acquire():
        pass

    def boom(r: Resource) -> bool:
        raise RuntimeError

    assert pool.sweep(boom) == 1
    assert pool.stats().open == 0


def test_many_threads_never_exceed_the_bound() -> None:
    pool, factory = make_pool(max_size=3, max_overflow=2, timeout=10)
    errors: list[BaseException] = []
    concurrent = 0
    high = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal concurrent, high
        try:
            for _ in range(200):
                with pool.acquire() as item:
                    assert not item.closed
                    with lock:
                        concurrent += 1
                        high = max(high, concurrent)
                    time.sleep(0)
                    with lock:
                        concurrent -= 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = pool.stats()
    assert stats.peak_open <= 5 and high <= 5
    assert stats.in_use == 0 and stats.open == stats.idle <= 3
    assert stats.created - stats.closed == stats.open


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        QueuedPool(Factory(), max_size=0)
    with pytest.raises(ValueError, match="max_overflow"):
        QueuedPool(Factory(), max_overflow=-1)
    with pytest.raises(ValueError, match="stale"):
        QueuedPool(Factory(), stale=-1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_forgets_the_parents_items_without_closing_them(tmp_path: Path) -> None:
    log = tmp_path / "closed.log"
    factory = Factory(log)
    pool: QueuedPool[Resource] = QueuedPool(factory)
    with pool.acquire():
        pass
    lease = pool.acquire()
    lease.__enter__()  # one idle, one lent while forking
    with pool.acquire() as idle_item:
        pass
    assert pool.stats().open == 2
    # The pool's lock is held by another thread at fork time: the child must not deadlock.
    holding = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with pool._lock:
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    holding.wait(5)
    result = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            stats = pool.stats()
            lease.__exit__(None, None, None)  # lent by the parent: forgotten, not closed
            with pool.acquire() as mine:
                pass
            pool.close()
            result.write_text(f"{stats.open} {mine.number} {mine.closed}")
            code = 0
        finally:
            os._exit(code)
    release.set()
    holder.join()
    assert wait_for_child(pid) == 0
    assert result.read_text() == "0 3 True"  # empty after fork; made and closed its own
    closed = log.read_text().splitlines() if log.exists() else []
    assert closed == [f"{pid} closed 3"]  # the child closed only its own item
    lease.__exit__(None, None, None)
    with pool.acquire() as again:  # the parent's pool is untouched
        assert again in factory.made[:2] and not again.closed
    assert not idle_item.closed and pool.stats().open == 2


def test_checkout_and_checkin_without_a_with_block() -> None:
    pool, factory = make_pool(max_size=1, max_overflow=0, timeout=0)
    entry = pool.checkout()
    assert entry.item is factory.made[0] and pool.stats().in_use == 1
    with pytest.raises(PoolTimeout):
        pool.checkout()
    pool.checkin(entry)
    again = pool.checkout()
    assert again.item is entry.item
    pool.checkin(again, broken=True)
    assert again.item.closed and pool.stats().open == 0
