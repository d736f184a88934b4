"""The cost of the OpenTelemetry hooks on a no-I/O trigger when no tracer provider is set."""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import eventisc
from eventisc import app as app_module

from ..harness import Check, Context, Row, Table, alternate, calibrated, paired, per_op, row
from ..support import NullListener

__all__ = ["tracing"]

assert NullListener.kind  # registers the no-I/O kind

EVENT = "svc.one"
DATA = {"user": {"id": 7, "email": "ada@example.com"}, "amount": 42}

TRACING_ANALYSIS = (
    "Without a provider a trigger looks up `opentelemetry.trace` in `sys.modules` and, when it "
    "is loaded, reads its `_TRACER_PROVIDER`; it tests once per route whether the trigger is "
    "traced. Nothing is imported and no object is made: what is left is those few bytecodes, "
    "on a trigger of about 1.5 µs, where the machine's noise is of the same size."
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


#: App._fire without the tracing check and with the plain send step call.
_FIRE_EDITS = [
    (
        r"^ *otel = _modules\.get\(OTEL_TRACE\).*\n *if otel is not None and .*\n"
        r" *return traced_fire\(.*\n",
        "",
    ),
    (
        r"^( *)outcome = \(\n *route\.send\(notification, start, sink\)\n *if trace is None\n"
        r" *else traced_step\(.*\n *\)\n",
        r"\1outcome = route.send(notification, start, sink)\n",
    ),
]


def _untraced_app() -> eventisc.App:
    """The same one-listener app, its trigger compiled without the tracing hooks."""
    fire = _recompiled(app_module.App._fire, _FIRE_EDITS)
    untraced = type("UntracedApp", (app_module.App,), {"_fire": fire})
    return untraced(listeners=[{"kind": "bench_null", "event_name": EVENT}])


def tracing(ctx: Context) -> list[Table]:
    table = Table(
        "tracing",
        "OpenTelemetry hooks without a tracer provider",
        "A trigger reaching one no-I/O listener against the same trigger compiled without the "
        "tracing hooks (`App._fire` from its source with the hook lines removed): first "
        "without OpenTelemetry loaded (when the suite has not loaded it), then with "
        "`opentelemetry.trace` imported but no tracer provider set (the most the hooks cost). "
        "Per trigger; each ratio is paired: the median over repetitions of the quotient "
        "between the two runs of one turn. Three times as many, three times shorter "
        "repetitions as elsewhere.",
    )
    hooked = eventisc.create_app(listeners=[{"kind": "bench_null", "event_name": EVENT}])
    bare = _untraced_app()
    try:
        if "opentelemetry.trace" not in sys.modules:
            table.rows += _compare(ctx, hooked, bare, "OpenTelemetry not loaded")
        import opentelemetry.trace as otel

        if otel._TRACER_PROVIDER is not None:
            table.notes.append("a tracer provider is set in this process: not measured loaded")
        else:
            table.rows += _compare(ctx, hooked, bare, "OpenTelemetry loaded, no provider")
    finally:
        hooked.close()
        bare.close()
    return [table]


def _compare(ctx: Context, hooked: eventisc.App, bare: eventisc.App, case: str) -> list[Row]:
    seconds = 0.02 if ctx.quick else 0.08
    variants = {
        "hooks": calibrated(lambda k: per_op(lambda: hooked.trigger(EVENT, DATA), k), seconds),
        "no hooks": calibrated(lambda k: per_op(lambda: bare.trigger(EVENT, DATA), k), seconds),
    }
    series = alternate(variants, ctx.reps * 3, progress=ctx.log)
    ratio = paired(series["hooks"], series["no hooks"])
    check = Check(
        f"{case}: trigger with the hooks / without",
        ratio,
        "<=",
        1.03,
        explanation=TRACING_ANALYSIS,
        profile=lambda: per_op(lambda: hooked.trigger(EVENT, DATA), 200_000),
    )
    added = (ratio - 1) * series["no hooks"].median
    return [
        row(f"{case}: trigger, one listener, no hooks", series["no hooks"]),
        row(f"{case}: trigger, one listener, hooks", series["hooks"], checks=[check]),
        Row(f"{case}: added cost per trigger", f"{added * 1e9:.0f} ns"),
    ]
