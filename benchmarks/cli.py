"""``python -m benchmarks``: run the workloads one at a time and write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import legacy as legacy_mod
from .harness import Context, Skip, Table
from .report import REPO, machine_facts, render
from .support import profile_text
from .workloads import WORKLOADS

__all__ = ["main"]


class WorkloadTimeout(Exception):
    pass


#: Workloads that talk to a broker other engineers' tests may restart: one more try on error.
RETRIED = ("rabbit", "celery")


class LogCounter(logging.Handler):
    """Counts what eventisc logs at WARNING and above, keeping the first few messages (a broker
    that goes away mid-run would otherwise print a traceback per event)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage()[:300])


@contextlib.contextmanager
def counted_logs() -> Iterator[LogCounter]:
    logger = logging.getLogger("eventisc")
    counter = LogCounter()
    saved = logger.propagate
    logger.addHandler(counter)
    logger.propagate = False
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.propagate = saved


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Interrupt the main thread after ``seconds`` (the workload's finally blocks clean up)."""

    def expired(signum: int, frame: Any) -> None:
        raise WorkloadTimeout(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = ", ".join(WORKLOADS)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run eventisc's benchmarks side by side with their references and write "
        f"a report. Workloads: {names}.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small counts and fewer repetitions: a smoke run of a few minutes",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(WORKLOADS),
        help="run only these workloads",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: BENCHMARKS.md; with --baseline, BASELINE.md)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not create the event-isc virtualenv; skip that reference "
        "unless it is already there",
    )
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="do not profile the variants that miss their target",
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write every check (workload, label, value, op, target) to PATH as JSON",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="compare this tree's checks with those of commit REF (git), running each workload "
        "alternately for both in fresh interpreters (see benchmarks/baseline.py); writes the "
        "comparison to --output",
    )
    parser.add_argument(
        "--turns", type=int, default=2, help="runs per tree and workload with --baseline"
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_workload(
    name: str, fn: Callable[[Context], list[Table]], ctx: Context, limit: int, profile: bool
) -> tuple[list[Table], bool]:
    """Run one workload; a Skip or an error becomes a table saying so. True if it crashed."""
    title = WORKLOADS[name][1]
    start = time.monotonic()
    log(f"== {name}: {title}")
    crashed = False
    retried = ""
    try:
        with time_limit(limit), counted_logs() as logged:
            try:
                tables = fn(ctx)
            except (Skip, WorkloadTimeout):
                raise
            except Exception as exc:
                if name not in RETRIED:
                    raise
                retried = f"{type(exc).__name__}: {exc}"
                log(f"{name} failed ({retried}); trying once more in 10 s")
                time.sleep(10)
                tables = fn(ctx)
            if profile:
                for table in tables:
                    for check in table.checks:
                        if check.passed is False and check.profile is not None:
                            log(f"profiling the miss: {check.label}")
                            try:
                                check.profiled = profile_text(check.profile)
                            except Exception as exc:  # the measurements stand without it
                                check.profiled = f"(profiling failed: {exc!r})"
    except Skip as exc:
        log(f"skipped: {exc}")
        tables = [Table(name, title, WORKLOADS[name][2], skipped=str(exc))]
    except Exception as exc:
        crashed = True
        traceback.print_exc()
        reason = f"error: {type(exc).__name__}: {exc}"
        tables = [Table(name, title, WORKLOADS[name][2], skipped=reason)]
    elapsed = time.monotonic() - start
    if retried:
        tables[0].notes.append(f"The first attempt failed ({retried}); these are the second's.")
    if logged.count:
        tables[0].notes.append(
            f"eventisc logged {logged.count} warning(s) or error(s) during this workload; "
            "the first: " + " / ".join(f"`{m}`" for m in logged.first)
        )
    for table in tables:
        table.seconds = elapsed / len(tables)
        for check in table.checks:
            log(f"{check.label}: {check.ratio_text} (target {check.target_text}) {check.verdict}")
    return tables, crashed


def write_json(path: Path, tables: Sequence[Table]) -> None:
    checks = [
        {"workload": t.name, "label": c.label, "value": c.value, "op": c.op, "target": c.target}
        for t in tables
        for c in t.checks
    ]
    path.write_text(json.dumps(checks, indent=1))


def run_baseline(args: argparse.Namespace) -> int:
    from . import baseline

    selected = args.only or ["routing", "http", "rabbit"]
    comparisons = baseline.compare(
        args.baseline, selected, turns=args.turns, quick=args.quick, log=log
    )
    text = baseline.render(args.baseline, comparisons, args.turns)
    args.output.write_text(text)
    print(text)
    return 1 if any(c.worse for c in comparisons) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.output is None:
        args.output = REPO / ("BASELINE.md" if args.baseline else "BENCHMARKS.md")
    if args.list:
        for name, (_, title, _desc, _limit) in WORKLOADS.items():
            print(f"{name:12} {title}")
        return 0
    if args.baseline:
        return run_baseline(args)
    selected = args.only or list(WORKLOADS)
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    # A SIGTERM unwinds like Ctrl-C: finally blocks stop the receivers, delete the queues.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    start = time.monotonic()
    legacy, reason = legacy_mod.start(install=not args.no_install, log=log)
    if legacy is None:
        log(f"event-isc reference skipped: {reason}")
    ctx = Context(quick=args.quick, legacy=legacy, legacy_reason=reason, log=log)
    tables: list[Table] = []
    crashed = False
    try:
        facts = machine_facts(legacy.info if legacy else None, reason)
        for name in selected:
            fn, _title, _desc, limit = WORKLOADS[name]
            done, failed = run_workload(name, fn, ctx, limit, not args.no_profile)
            tables += done
            crashed = crashed or failed
            # Written after every workload: a run cut short still leaves its results.
            report = render(tables, facts, command, time.monotonic() - start)
            args.output.write_text(report)
            if args.json:
                write_json(args.json, tables)
    finally:
        if legacy is not None:
            legacy.close()
    log(f"wrote {args.output} in {time.monotonic() - start:.0f} s")
    return 1 if crashed else 0
