"""``python -m benchmarks --baseline REF``: this tree's checks against another commit's, in one run.

The package ``eventisc`` of commit ``REF`` is extracted (``git archive``) into a temporary
directory. Each selected workload then runs ``turns`` times for each tree, alternating (this
tree, REF, REF, this tree, ...), each run in a fresh interpreter whose ``eventisc`` is that
tree's while the benchmark code is this one's. Every check of a workload is a ratio against a
reference measured in the same run (a raw client, event-isc); its change is this tree's value
over REF's, paired per turn (the median of the per-turn quotients), so the machine's drift
falls on both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import REPO, _git

__all__ = ["Comparison", "compare", "render"]

#: How much worse than REF a check may be before it is flagged: 5%.
TOLERANCE = 0.05


@dataclass
class Comparison:
    """One check across the two trees: its values per turn, and the paired change."""

    workload: str
    label: str
    op: str
    target: float
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        """This tree's value over REF's, paired per turn (None when a side is missing)."""
        pairs = [(a, b) for a, b in zip(self.ours, self.theirs, strict=False) if a and b]
        if not pairs:
            return None
        return statistics.median(a / b for a, b in pairs)

    @property
    def worse(self) -> bool:
        """More than :data:`TOLERANCE` worse than REF (a lower ratio for a ``>=`` target)."""
        change = self.change
        if change is None or not self.op:
            return False
        return change < 1 - TOLERANCE if self.op == ">=" else change > 1 + TOLERANCE


def extract(ref: str, into: Path) -> Path:
    """Extract the package of commit ``ref`` into ``into``; return the directory to put on
    ``sys.path``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "eventisc"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=_bytes_io(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def run_once(workload: str, package_dir: Path, quick: bool, out: Path) -> list[dict[str, Any]]:
    """Run one workload in a fresh interpreter with ``package_dir``'s eventisc; its checks."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_dir), str(REPO)]))
    command = [sys.executable, "-m", "benchmarks", "--only", workload, "--no-profile",
               "--output", str(out.with_suffix(".md")), "--json", str(out)]  # fmt: skip
    if quick:
        command.append("--quick")
    # cwd outside the repository: the interpreter must not find this tree's eventisc first.
    subprocess.run(command, cwd=out.parent, env=env, check=False, stdout=subprocess.DEVNULL)
    if not out.exists():
        return []
    checks: list[dict[str, Any]] = json.loads(out.read_text())
    out.unlink()
    return checks


def compare(
    ref: str,
    workloads: Sequence[str],
    *,
    turns: int = 2,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> list[Comparison]:
    """Run ``workloads`` for this tree and for ``ref``, alternating, ``turns`` times each."""
    results: dict[tuple[str, str], Comparison] = {}
    with tempfile.TemporaryDirectory(prefix="eventisc-baseline-") as tmp:
        base = extract(ref, Path(tmp) / "ref")
        here = REPO
        for workload in workloads:
            for turn in range(turns):
                order = [("ours", here), ("theirs", base)]
                for side, tree in order if turn % 2 == 0 else reversed(order):
                    started = time.monotonic()
                    checks = run_once(workload, tree, quick, Path(tmp) / f"{side}.json")
                    log(f"{workload} turn {turn + 1}/{turns} {side}: {len(checks)} checks in "
                        f"{time.monotonic() - started:.0f} s")  # fmt: skip
                    for check in checks:
                        key = (workload, check["label"])
                        found = results.setdefault(
                            key, Comparison(workload, check["label"], check["op"], check["target"])
                        )
                        getattr(found, side).append(check["value"] or 0.0)
    return list(results.values())


def render(ref: str, comparisons: Sequence[Comparison], turns: int) -> str:
    """A Markdown section of the comparison."""
    lines = [
        f"## Against {ref}",
        "",
        f"This tree: {_git()}. Each workload ran {turns} times per tree, alternating; a change is "
        f"this tree's check over {ref}'s, paired per turn. Flagged: more than {TOLERANCE:.0%} "
        "worse.",
        "",
        f"| workload | check | this tree | {ref} | change | |",
        "|---|---|---:|---:|---:|---|",
    ]
    for c in comparisons:
        ours = statistics.median(c.ours) if c.ours else None
        theirs = statistics.median(c.theirs) if c.theirs else None
        change = c.change
        lines.append(
            f"| {c.workload} | {c.label} | {_num(ours)} | {_num(theirs)} | "
            f"{'n/a' if change is None else f'{change:.3f}×'} | {'WORSE' if c.worse else ''} |"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
