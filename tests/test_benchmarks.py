"""The benchmark suite still runs: its quick mode on the cheap workloads, and its verdicts.

Timings are never asserted here: a benchmark measures, the report says PASS or MISS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.harness import Check, Series, alternate, speedup

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_writes_a_report(tmp_path: Path) -> None:
    # Given the suite in quick mode on the CPU-only workloads, not installing event-isc
    # (its reference is used when benchmarks/.venv-event-isc exists, skipped otherwise),
    # when it runs as users run it, then it exits 0 and writes the report where it was told.
    output = tmp_path / "report.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-install", "--no-profile",
         "--only", "routing", "rendering", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = output.read_text()
    assert report.startswith("# eventisc benchmarks")
    for expected in ("| Python | CPython", "## Summary", "## Routing: 10 / 100 / 1,000 listeners",
                     "## Rendering: 5 templated fields", "1,000 listeners: vs event-isc",
                     "cost at 1,000 / cost at 10 listeners"):  # fmt: skip
        assert expected in report, expected
    # Our own routing ratio needs no reference: it always has a verdict.
    summary = report.split("## Routing")[0]
    assert "no match: cost at 1,000 / cost at 10 listeners" in summary
    assert "| PASS |" in summary or "| MISS by" in summary
    # Nothing else ran, and BENCHMARKS.md was not touched by this run.
    assert "## RabbitMQ" not in report and "## HTTP" not in report


def test_unknown_workload_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nosuch", "--output", "/dev/null"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "invalid choice: 'nosuch'" in proc.stderr


def test_check_verdicts() -> None:
    assert Check("x", 0.8, ">=", 0.9).verdict == "MISS by 11%"
    assert Check("x", 0.946, ">=", 0.95).verdict == "MISS by 0.4%"
    assert Check("x", 0.95, ">=", 0.9).verdict == "PASS"
    assert Check("x", 0.12, "<=", 0.10, style="+%").verdict == "MISS by 20%"
    assert Check("x", 0.105, "<=", 0.10, style="+%").verdict == "MISS by 5.0%"
    assert Check("x", 0.12, "<=", 0.10, style="+%").ratio_text == "+12.0%"
    assert Check("x", None, ">=", 1).verdict == "SKIP"
    assert Check("x", 3.0, "", 0).verdict == "info"


def test_alternate_runs_every_variant_in_turns() -> None:
    calls: list[str] = []

    def variant(label: str, cost: float) -> Callable[[], float]:
        def run() -> float:
            calls.append(label)
            return cost

        return run

    series = alternate({"a": variant("a", 2.0), "b": variant("b", 1.0)}, reps=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B, B A, A B
    assert series["a"].costs == [2.0, 2.0, 2.0]
    assert speedup(series["b"], series["a"]) == 2.0
    assert speedup(series["b"], Series("empty")) is None
