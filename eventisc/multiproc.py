"""Prometheus' multiprocess mode: every process writes its numbers to files in
``PROMETHEUS_MULTIPROC_DIR``; one scrape of the directory adds them up.

Under gunicorn or Celery prefork each worker process counts its own notifications; a scrape of
one process would show only that worker's share. With the variable set, a :class:`Writer` in
each process writes the metric families of its apps every :data:`INTERVAL` seconds, at exit
and right before the process forks, through prometheus_client's own per-process files
(``counter_<pid>.db``, ``gauge_livesum_<pid>.db``, ...). :func:`collector` reads them all:
counters and histograms add up over the processes, each gauge as its ``multiprocess_mode``
says. Nothing is done on the trigger path: the writer reads ``stats()`` from its thread.

A child forked from a process that had already counted (gunicorn's ``preload_app``) writes
only what it counted itself: what the parent had counted stays the parent's.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ._fork import register as fork_safe
from .heartbeat import Heartbeat

__all__ = ["ENV", "INTERVAL", "Writer", "collector", "directory"]

logger = logging.getLogger(__name__)

#: The variable naming the directory of the per-process files (prometheus_client's).
ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between two writes of a process's numbers.
INTERVAL = 1.0

#: A written value: (type, multiprocess_mode, sample name, labels).
_Key = tuple[str, str, str, tuple[tuple[str, str], ...]]


def directory() -> str | None:
    """The directory of multiprocess mode, or None when it is off."""
    return os.environ.get(ENV) or None


class Writer:
    """Writes the metric families ``collect()`` returns to this process's files, from a daemon
    thread every ``interval`` seconds (:meth:`write` writes at once).

    Counters and histogram buckets are written as this process's totals, gauges as they are,
    with the mode ``modes`` gives their family (KeyError for a gauge without one). Fork-safe:
    the parent writes right before a fork; the child gets a thread and files of its own.
    """

    def __init__(
        self,
        collect: Callable[[], Iterable[Metric]],
        modes: Mapping[str, str],
        interval: float = INTERVAL,
    ):
        self._collect = collect
        self._modes = modes
        self.interval = interval
        self._lock = threading.Lock()
        # A class of prometheus_client's file-backed values, with files and a lock of its own.
        self._value_class: Any = values.MultiProcessValue()
        self._values: dict[_Key, Any] = {}
        #: What this writer wrote last, and what the parent had counted before a fork.
        self._written: dict[_Key, float] = {}
        self._inherited: dict[_Key, float] = {}
        self._thread: Heartbeat | None = None
        fork_safe(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self._before_fork)
        atexit.register(self.write)

    def start(self) -> None:
        """Start the thread that writes every ``interval`` seconds (if it is not running)."""
        if self._thread is None:
            self._thread = Heartbeat(self.write, self.interval, "eventisc-metrics-writer")

    def stop(self) -> None:
        """Stop the thread (after a last write)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
        self.write()

    def write(self) -> None:
        """Write this process's numbers now."""
        with self._lock:
            for family in self._collect():
                if family.type == "histogram":
                    self._histogram(family)
                    continue
                mode = self._modes[family.name] if family.type == "gauge" else ""
                for sample in family.samples:
                    if not sample.name.endswith("_created"):
                        self._set(family, sample.name, sample.labels, sample.value, mode)

    def _histogram(self, family: Metric) -> None:
        # Files hold each bucket's own count (the collector makes them cumulative again).
        below: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                series = tuple((k, v) for k, v in sample.labels.items() if k != "le")
                count = sample.value - below.get(series, 0.0)
                below[series] = sample.value
                self._set(family, sample.name, sample.labels, count, "")
            elif sample.name.endswith("_sum"):
                self._set(family, sample.name, sample.labels, sample.value, "")

    def _set(
        self, family: Metric, name: str, labels: dict[str, str], value: float, mode: str
    ) -> None:
        key: _Key = (family.type, mode, name, tuple(labels.items()))
        self._written[key] = value
        inherited = self._inherited.get(key, 0.0)
        if value >= inherited:  # else the app was built again since the fork: all its own
            value -= inherited
        held = self._values.get(key)
        if held is None:
            held = self._values[key] = self._value_class(
                family.type, family.name, name, tuple(labels), tuple(labels.values()),
                family.documentation, multiprocess_mode=mode,
            )  # fmt: skip
        held.set(value)

    def _before_fork(self) -> None:
        try:
            self.write()
        except Exception:  # a fork must go on; the child writes from its own numbers
            logger.exception("writing the metrics before a fork failed")

    def _after_fork(self) -> None:
        # The parent's thread, lock and files stay the parent's (its lock may be held).
        running = self._thread is not None
        self._lock = threading.Lock()
        self._value_class = values.MultiProcessValue()
        self._values = {}
        self._inherited = {key: n for key, n in self._written.items() if key[0] != "gauge"}
        self._written = {}
        self._thread = None
        if running:
            self.start()


class _WriteThenCollect(Collector):
    """The directory's numbers, after this process wrote its own (exact for this process)."""

    def __init__(self, path: str, writer: Writer | None):
        self._files = MultiProcessCollector(None, path)
        self._writer = writer

    def collect(self) -> Iterable[Metric]:
        if self._writer is not None:
            self._writer.write()
        return self._files.collect()


def collector(path: str, writer: Writer | None = None) -> Collector:
    """A collector adding up the numbers every process wrote to ``path`` (ValueError when it is
    not a directory); ``writer``: this process's, written first at each scrape."""
    return _WriteThenCollect(path, writer)
