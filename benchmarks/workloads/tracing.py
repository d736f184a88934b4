"""The cost of the OpenTelemetry hooks on a no-I/O trigger when no tracer provider is set."""

from __future__ import annotations

import gc
import inspect
import re
import sys
import textwrap
import time
from collections.abc import Callable
from itertools import repeat
from typing import Any

import eventisc
from eventisc import app as app_module
from eventisc import tracing as tracing_module

from ..harness import Check, Context, Row, Series, Table, paired, per_op, row
from ..support import NullListener

__all__ = ["tracing"]

assert NullListener.kind  # registers the no-I/O kind

EVENT = "svc.one"
DATA = {"user": {"id": 7, "email": "ada@example.com"}, "amount": 42}
#: Compiled copies of each variant, and triggers per timed run (about 3 ms).
COPIES = 6
ITERATIONS = 2000

TRACING_ANALYSIS = (
    "Until a tracer provider may be set (OpenTelemetry's `set_tracer_provider` ran), a "
    "trigger checks nothing: the app's checking trigger is swapped in only then. What is left "
    "is one test per route of whether the trigger is traced: two bytecodes, on a trigger of "
    "about 1.5 µs, where the interpreter's own variations (code of the same length laid out "
    "differently) are of the same size."
)


def _recompiled(fn: Callable[..., Any], edits: list[tuple[str, str]]) -> Callable[..., Any]:
    """``fn`` compiled again from its source with the regex ``edits`` applied (each must
    match), in its own module's globals."""
    source = textwrap.dedent(inspect.getsource(fn))
    for pattern, replacement in edits:
        source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
        if count == 0:
            raise AssertionError(f"{fn.__qualname__}: no match for {pattern!r}: update {__file__}")
    namespace = dict(fn.__globals__)
    exec(compile(source, inspect.getsourcefile(fn) or "<hooks removed>", "exec"), namespace)
    return namespace[fn.__name__]


#: App._fire with the plain send step call (until a tracer provider may be set, App._fire
#: checks nothing else: eventisc.tracing.when_armed swaps in the checking one).
_FIRE_EDITS = [
    (
        r"^( *)outcome = \(\n *route\.send\(notification, start, sink\)\n *if trace is None\n"
        r" *else traced_step\(.*\n *\)\n",
        r"\1outcome = route.send(notification, start, sink)\n",
    ),
]


def _app(edits: list[tuple[str, str]]) -> eventisc.App:
    """The one-listener app, its trigger compiled again with ``edits``: both variants are made
    the same way (a subclass, a recompiled ``_fire``), so that only the edits differ."""
    fire = _recompiled(app_module.App._untraced_fire, edits)
    variant = type("BenchApp", (app_module.App,), {"_fire": fire})
    return variant(listeners=[{"kind": "bench_null", "event_name": EVENT}])


def _cpu_per_op(app: eventisc.App, iterations: int) -> float:
    """CPU seconds of this thread per trigger over ``iterations`` triggers: time the thread
    was not running (the other processes of a busy machine) does not count."""
    trigger = app.trigger
    start = time.thread_time()
    for _ in repeat(None, iterations):
        trigger(EVENT, DATA)
    return (time.thread_time() - start) / iterations


def tracing(ctx: Context) -> list[Table]:
    table = Table(
        "tracing",
        "OpenTelemetry hooks without a tracer provider",
        "A trigger reaching one no-I/O listener against the same trigger compiled without the "
        "tracing hook (`App._fire` from its source with the per-route test of whether the "
        "trigger is traced removed; until a tracer provider may be set, `App._fire` has no "
        "other): first without OpenTelemetry loaded (when the suite has not loaded it), then "
        "with `opentelemetry.trace` imported (and hooked) but no tracer provider set. "
        "Both variants are compiled the same way, from the same source, six copies each "
        "(two copies of the very same code differ by up to 4%, by where they fall in "
        "memory), and the pairs go through every combination of copies. CPU time of the "
        "benchmark's thread per trigger (time the machine's other processes take does not "
        "count), in runs of 2000 triggers (about 3 ms), without garbage collection during a "
        "run; each ratio is the median over 180 (quick) to 300 pairs of the quotient between "
        "the two runs of one pair, which run back to back, alternating which runs first.",
    )
    # Copies of identical code differ by a few percent (where the objects fall in memory):
    # each variant is several copies, paired in every combination, to average that out.
    hooked = [_app([]) for _ in range(COPIES)]
    bare = [_app(_FIRE_EDITS) for _ in range(COPIES)]
    try:
        if "opentelemetry.trace" not in sys.modules:
            table.rows += _compare(ctx, hooked, bare, "OpenTelemetry not loaded")
        import opentelemetry.trace as otel

        if otel._TRACER_PROVIDER is not None or tracing_module.armed:
            table.notes.append(
                "a tracer provider is or was set in this process: not measured loaded"
            )
        else:
            table.rows += _compare(ctx, hooked, bare, "OpenTelemetry loaded, no provider")
    finally:
        for app in hooked + bare:
            app.close()
    return [table]


def _compare(
    ctx: Context, hooked: list[eventisc.App], bare: list[eventisc.App], case: str
) -> list[Row]:
    """Pairs of runs, one of a ``hooked`` app and one of a ``bare`` one, each pair taking
    another combination of the copies."""
    pairs = ctx.reps * 60
    copies = len(hooked)
    series = {"hooks": Series("hooks"), "no hooks": Series("no hooks")}
    for app in hooked + bare:  # warm-up
        for _ in range(3):
            _cpu_per_op(app, ITERATIONS)
    gc.collect()
    gc.disable()  # a collection would fall on one side of a pair
    try:
        for turn in range(pairs):
            one = ("hooks", hooked[turn % copies])
            other = ("no hooks", bare[(turn // copies) % copies])
            for label, app in (one, other) if turn % 2 == 0 else (other, one):
                series[label].add(_cpu_per_op(app, ITERATIONS))
            if turn % 50 == 49:
                gc.enable()
                gc.collect()
                gc.disable()
                ctx.log(f"{case}: {turn + 1}/{pairs} pairs")
    finally:
        gc.enable()
    ratio = paired(series["hooks"], series["no hooks"])
    check = Check(
        f"{case}: trigger with the hooks / without",
        ratio,
        "<=",
        1.03,
        explanation=TRACING_ANALYSIS,
        profile=lambda: per_op(lambda: hooked[0].trigger(EVENT, DATA), 200_000),
    )
    added = (ratio - 1) * series["no hooks"].median
    return [
        row(f"{case}: trigger, one listener, no hooks", series["no hooks"]),
        row(f"{case}: trigger, one listener, hooks", series["hooks"], checks=[check]),
        Row(f"{case}: added cost per trigger", f"{added * 1e9:.0f} ns"),
    ]
