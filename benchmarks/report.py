"""BENCHMARKS.md: the machine, then one table per workload, then a summary of the targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .harness import Check, Table

__all__ = ["machine_facts", "render"]

REPO = Path(__file__).resolve().parent.parent
LIBRARIES = ("eventisc", "requests", "urllib3", "pika", "celery", "kombu", "redis", "PyYAML")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def _rabbitmq_version(host: str, port: int) -> str:
    try:
        import pika

        conn = pika.BlockingConnection(
            pika.ConnectionParameters(host, port, socket_timeout=2, blocked_connection_timeout=2)
        )
        try:
            version = conn._impl.server_properties.get("version", b"?")
        finally:
            conn.close()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception as exc:
        return f"not reachable ({type(exc).__name__})"


def _redis_version(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"INFO server\r\n")
            data = sock.recv(65536).decode(errors="replace")
        for line in data.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"
    except OSError as exc:
        return f"not reachable ({type(exc).__name__})"


def machine_facts(legacy: dict[str, Any] | None, legacy_reason: str) -> list[tuple[str, str]]:
    """(name, value) pairs describing where and with what the suite ran."""
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    facts = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("commit", _git()),
        ("CPU", f"{os.cpu_count()} × {_cpu_model()}"),
        ("memory", mem or "?"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("libraries", ", ".join(f"{n} {_version(n)}" for n in LIBRARIES)),
        ("RabbitMQ", _rabbitmq_version("127.0.0.1", 5672)),
        ("Redis", _redis_version("127.0.0.1", 6379)),
    ]
    if legacy:
        versions = legacy.get("versions", {})
        facts.append(
            (
                "event-isc reference",
                f"event-isc {versions.get('event-isc', '?')} in benchmarks/.venv-event-isc "
                f"(Python {legacy.get('python', '?')}; "
                + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "event-isc")
                + ")",
            )
        )
    else:
        facts.append(("event-isc reference", f"SKIPPED: {legacy_reason}"))
    return facts


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_md(table: Table) -> list[str]:
    out = [f"## {table.title}", "", table.description, ""]
    if table.skipped:
        out += [f"**Skipped:** {table.skipped}", ""]
        for note in table.notes:
            out += [note, ""]
        return out
    out += [
        f"| variant | {table.columns[0]} | {table.columns[1]} | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in table.rows:
        checks: list[Check | None] = list(r.checks) or [None]
        for i, check in enumerate(checks):
            label = r.label if i == 0 else "″"
            median, spread = (r.median, r.spread) if i == 0 else ("", "")
            if check is None:
                cells = ["", "", ""]
            else:
                cells = [check.ratio_text, f"{check.label} {check.target_text}", check.verdict]
                if check.verdict.startswith("MISS"):
                    cells[2] = f"**{cells[2]}**"
            out.append("| " + " | ".join(_cell(c) for c in [label, median, spread, *cells]) + " |")
    out.append("")
    row_notes = [f"- *{r.label}*: {r.note}" for r in table.rows if r.note]
    if row_notes:
        out += row_notes + [""]
    misses = [c for c in table.checks if c.verdict.startswith("MISS")]
    explained: set[str] = set()
    for check in misses:
        out += [
            f"**{check.label}: {check.verdict}** ({check.ratio_text}, target {check.target_text}).",
            "",
        ]
        if check.explanation and check.explanation not in explained:
            explained.add(check.explanation)
            out += [check.explanation, ""]
        if check.profiled:
            out += [
                "<details><summary>cProfile of one repetition of ours (own time, all "
                "threads)</summary>",
                "",
                "```",
                check.profiled,
                "```",
                "</details>",
                "",
            ]
    for note in table.notes:
        out += [note, ""]
    out.append(f"<sub>{table.seconds:.0f} s</sub>")
    out.append("")
    return out


def render(
    tables: Sequence[Table],
    facts: Sequence[tuple[str, str]],
    command: str,
    seconds: float,
) -> str:
    """The whole BENCHMARKS.md."""
    out = [
        "# eventisc benchmarks",
        "",
        f"Written by `{command}` in {seconds:.0f} s. Every ratio compares variants measured in "
        'this same run, alternating, after a warm-up; "median" and "spread" are over the '
        "repetitions. Ratios are ours / reference in speed (higher is better) unless the target "
        "says otherwise, and are paired: the median over repetitions of the ratio between the "
        "two runs of one turn, so a burst of noise falls on both sides (this can differ a "
        "little from the ratio of the two medians shown).",
        "",
        "| | |",
        "|---|---|",
        *[f"| {name} | {_cell(value)} |" for name, value in facts],
        "",
        "## Summary",
        "",
        "| workload | check | ratio | target | result |",
        "|---|---|---:|---|---|",
    ]
    for table in tables:
        if table.skipped:
            out.append(f"| {table.title} | — | — | — | SKIP: {_cell(table.skipped)} |")
            continue
        for check in table.checks:
            out.append(
                f"| {table.title} | {_cell(check.label)} | {check.ratio_text} | "
                f"{check.target_text} | {check.verdict} |"
            )
    out.append("")
    for table in tables:
        out += _table_md(table)
    return "\n".join(out).rstrip() + "\n"
