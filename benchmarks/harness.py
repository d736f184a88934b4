"""Measuring: repetitions alternated between variants, their statistics, targets and tables.

A *variant* is a callable that does one repetition of a workload and returns its cost in
seconds per operation (a micro benchmark) or its :class:`Run` (ops and seconds, for
throughput). :func:`alternate` warms every variant up, then runs the repetitions in turns
(A B C, C B A, A B C, ...) so drift of the machine (frequency, a noisy neighbour) hits every
variant alike. Ratios are always taken between variants measured in the same run.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

__all__ = [
    "Check",
    "Context",
    "Row",
    "Run",
    "Series",
    "Skip",
    "Table",
    "alternate",
    "per_op",
]


class Skip(Exception):
    """A workload (or one variant) cannot run here: a service is down, a package missing."""


@dataclass
class Context:
    """What every workload gets: the run's mode, the event-isc reference, a progress log."""

    quick: bool
    legacy: Any  # benchmarks.legacy.Legacy or None
    legacy_reason: str
    log: Callable[[str], None]

    @property
    def reps(self) -> int:
        """Timed repetitions per variant."""
        return 3 if self.quick else 5

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def legacy_call(self, request: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """Ask the event-isc worker; raises Skip when the reference is not available."""
        if self.legacy is None:
            raise Skip(f"event-isc reference skipped: {self.legacy_reason}")
        try:
            return dict(self.legacy.call(request, timeout))
        except RuntimeError as exc:  # the worker died or hung: no reference from now on
            self.legacy, self.legacy_reason = None, str(exc)
            raise Skip(f"event-isc reference lost: {exc}") from None


def calibrated(run: Callable[[int], float], seconds: float) -> Callable[[], float]:
    """A variant running ``run(iterations)`` (which returns seconds per operation) for about
    ``seconds``; the first call (a warm-up) finds the number of iterations."""
    iterations = 0

    def variant() -> float:
        nonlocal iterations
        if iterations:
            return run(iterations)
        n = 10
        while True:
            cost = run(n)
            if cost * n >= min(0.02, seconds / 2) or n >= 10_000_000:
                break
            n *= 10
        iterations = max(10, int(seconds / max(cost, 1e-9)))
        return cost

    return variant


@dataclass
class Run:
    """One repetition: ``ops`` operations in ``seconds``; ``note`` flags anything odd."""

    ops: int
    seconds: float
    note: str = ""

    @property
    def cost(self) -> float:
        return self.seconds / self.ops


@dataclass
class Series:
    """The per-repetition costs (seconds per operation) of one variant."""

    label: str
    costs: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.costs)

    @property
    def low(self) -> float:
        return min(self.costs)

    @property
    def high(self) -> float:
        return max(self.costs)

    def add(self, result: float | Run) -> None:
        if isinstance(result, Run):
            self.costs.append(result.cost)
            if result.note and result.note not in self.notes:
                self.notes.append(result.note)
        else:
            self.costs.append(result)


def per_op(fn: Callable[[], Any], iterations: int) -> float:
    """Seconds per call of ``fn`` over ``iterations`` calls (after a garbage collection)."""
    gc.collect()
    start = time.perf_counter()
    for _ in repeat(None, iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def alternate(
    variants: Mapping[str, Callable[[], float]] | Mapping[str, Callable[[], Run]],
    reps: int,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
    recover: Callable[[], None] | None = None,
    settle: float = 0.0,
) -> dict[str, Series]:
    """Run every variant ``warmup`` times untimed, then ``reps`` times each, in turns.

    A variant that raises :class:`Skip` is dropped (its series stays empty, the reason is in
    its notes). Any other exception propagates, unless ``recover`` is given (I/O workloads: a
    broker restarted by someone else's test): then ``recover()`` is called (it waits for the
    service), the repetition is run again once, and a second failure drops the variant, with
    the errors in its notes.

    ``settle``: seconds to pause after every run, for a broker to finish what the run left it
    (deleting a queue of thousands of messages) before the next variant is timed; otherwise
    the variant that follows a heavy one in the turn order pays for it.
    """
    series = {label: Series(label) for label in variants}
    live: dict[str, Callable[[], float | Run]] = dict(variants)

    def one(label: str, record: bool, again: bool = True) -> None:
        try:
            result = live[label]()
        except Skip as exc:
            series[label].notes.append(f"skipped: {exc}")
            del live[label]
            return
        except Exception as exc:
            if recover is None:
                raise
            if progress:
                progress(f"{label}: a repetition failed ({type(exc).__name__}: {exc})")
            if not again:
                series[label].notes.append(f"dropped after a second failure: {exc}")
                del live[label]
                return
            series[label].notes.append(f"a repetition failed and was run again: {exc}")
            recover()
            one(label, record, again=False)
            return
        if record:
            series[label].add(result)
        if settle:
            time.sleep(settle)

    for _ in range(warmup):
        for label in list(live):
            one(label, record=False)
    for rep in range(reps):
        order = list(live) if rep % 2 == 0 else list(reversed(live))
        for label in order:
            if label in live:
                one(label, record=True)
        if progress:
            done = ", ".join(
                f"{label} {fmt_cost(s.costs[-1])}" for label, s in series.items() if s.costs
            )
            progress(f"rep {rep + 1}/{reps}: {done}")
    return series


# -- presentation -------------------------------------------------------------------------------


def fmt_cost(seconds: float) -> str:
    """A per-operation cost in the unit that reads best."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_rate(ops_per_second: float) -> str:
    if ops_per_second >= 100:
        return f"{ops_per_second:,.0f}/s"
    return f"{ops_per_second:,.1f}/s"


@dataclass
class Check:
    """A target on a ratio: ``value`` must be ``>=`` or ``<=`` ``target``.

    ``style`` says how to print the ratio: ``x`` (1.23×), ``%`` (12.3%) or ``+%`` (an added
    cost: +12.3%). ``op`` "" makes it information only, with no target.
    """

    label: str
    value: float | None
    op: str
    target: float
    style: str = "x"
    #: Where the time goes when the check misses (analysis written from a profile).
    explanation: str = ""
    #: One repetition of our variant, profiled by the suite when the check misses.
    profile: Callable[[], Any] | None = None
    #: The profile's text (filled in by the suite).
    profiled: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        if not self.op:
            return True
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def fmt(self, value: float) -> str:
        if self.style in ("%", "+%"):
            sign = "+" if self.style == "+%" else ""
            digits = 2 if abs(value) < 0.01 else 1
            return f"{value * 100:{sign}.{digits}f}%"
        if value >= 100:
            return f"{value:,.0f}×"
        return f"{value:.3g}×" if value < 10 else f"{value:.1f}×"

    @property
    def ratio_text(self) -> str:
        return "n/a" if self.value is None else self.fmt(self.value)

    @property
    def target_text(self) -> str:
        if not self.op:
            return "(no target)"
        sign = "≥" if self.op == ">=" else "≤"
        if self.style in ("%", "+%"):
            return f"{sign} {self.target * 100:g}%"
        return f"{sign} {self.target:g}×"

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "SKIP"
        if not self.op:
            return "info"
        if self.passed:
            return "PASS"
        shortfall = self.shortfall * 100
        return f"MISS by {shortfall:.1f}%" if shortfall < 10 else f"MISS by {shortfall:.0f}%"

    @property
    def shortfall(self) -> float:
        """How far from the target, as a fraction of the target (0 when passed)."""
        if self.value is None or self.passed:
            return 0.0
        if self.op == ">=":
            return (self.target - self.value) / self.target
        return (self.value - self.target) / self.target if self.target else float("inf")


@dataclass
class Row:
    """One line of a workload's table (median and spread already formatted)."""

    label: str
    median: str = ""
    spread: str = ""
    checks: list[Check] = field(default_factory=list)
    note: str = ""


def row(label: str, s: Series | None, rate: bool = False, checks: Sequence[Check] = ()) -> Row:
    """A row for a series: cost per op, or operations per second with ``rate``."""
    if s is None or not s.costs:
        note = "; ".join(s.notes) if s is not None else "not measured"
        return Row(label, "—", "—", list(checks), note or "not measured")
    if rate:
        median = fmt_rate(1 / s.median)
        spread = f"{fmt_rate(1 / s.high)} – {fmt_rate(1 / s.low)}"
    else:
        median = fmt_cost(s.median)
        spread = f"{fmt_cost(s.low)} – {fmt_cost(s.high)}"
    return Row(label, median, spread, list(checks), "; ".join(s.notes))


def paired(num: Series, den: Series) -> float:
    """``num``'s cost over ``den``'s: the median over repetitions of that ratio, each between
    the two runs of one turn of :func:`alternate` (a burst of noise from the machine or a
    broker falls on both); the ratio of the medians when the series do not pair up."""
    if len(num.costs) == len(den.costs):
        return statistics.median(a / b for a, b in zip(num.costs, den.costs, strict=True))
    return num.median / den.median


def speedup(ours: Series | None, ref: Series | None) -> float | None:
    """How many times faster ours is than the reference (ref cost / our cost, paired)."""
    if ours is None or ref is None or not ours.costs or not ref.costs:
        return None
    return paired(ref, ours)


@dataclass
class Table:
    """A workload's results: rows, free text, and whether (why) it was skipped."""

    name: str
    title: str
    description: str
    columns: tuple[str, str] = ("median", "spread (min – max)")
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0

    @property
    def checks(self) -> list[Check]:
        return [c for r in self.rows for c in r.checks]
