"""What the workloads share: the receiver process, service checks, RSS, profiles, the null kind."""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eventisc

from .harness import Skip

__all__ = [
    "RABBITMQ",
    "REDIS",
    "REPO",
    "NullListener",
    "Receiver",
    "closed_port",
    "profile_text",
    "receiver",
    "require",
    "rss_kb",
    "wait_for",
]

REPO = Path(__file__).resolve().parent.parent
RABBITMQ = ("127.0.0.1", 5672)
REDIS = ("127.0.0.1", 6379)


class NullListener(eventisc.Listener):
    """A custom kind that does no I/O, so routing and the trigger path are what is measured."""

    kind = "bench_null"

    def _do_notify(self, event_name: str, event_data: Any) -> bool:
        return True


def require(name: str, address: tuple[str, int]) -> None:
    """Raise :class:`Skip` when ``address`` does not accept a TCP connection."""
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError as exc:
        raise Skip(f"{name} is not reachable at {address[0]}:{address[1]} ({exc})") from None


def wait_for(name: str, address: tuple[str, int], seconds: float = 90) -> None:
    """Wait until ``address`` accepts connections again (another engineer's test may be
    restarting the broker), then a little more for it to settle; Skip after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise Skip(f"{name} at {address[0]}:{address[1]} did not come back") from None
            time.sleep(1)
    time.sleep(3)


def rss_kb(field: str = "VmRSS") -> int:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def closed_port() -> int:
    """A local port where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """An HTTP server running in another process: ``python -m MODULE ARGS`` prints
    ``PORT <n>`` once it listens on 127.0.0.1 and ends when its stdin is closed."""

    def __init__(self, module: str, *args: str, what: str = "the server", wait: float = 15):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"{what} did not start (got {line!r})")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Receiver(ServerProcess):
    """The HTTP receiver running in another process (:mod:`benchmarks.http_server`)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        super().__init__("benchmarks.http_server", "--delay", str(delay), what="the HTTP receiver")

    def count(self) -> int:
        """POSTs received so far."""
        with urllib.request.urlopen(f"{self.url}/count", timeout=10) as resp:
            return int(resp.read())


@contextlib.contextmanager
def receiver(delay: float = 0.0) -> Iterator[Receiver]:
    r = Receiver(delay)
    try:
        yield r
    finally:
        r.close()


def profile_text(fn: Callable[[], Any], top: int = 14) -> str:
    """Run ``fn`` under cProfile, in this thread and in every thread it starts; return the
    functions with the most own time ("tottime"), as text."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(*_: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    main = cProfile.Profile()
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        fn()
    finally:
        main.disable()
        threading.setprofile(None)
    for profile in profiles:
        with contextlib.suppress(Exception):
            profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(main, stream=out)
    for profile in profiles:
        with contextlib.suppress(TypeError):  # a thread that recorded nothing
            stats.add(profile)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    # Keep the header line of the listing and the listing itself.
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


def json_line(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def cpu_busy() -> float:
    """The 1-minute load average per core (a noisy machine shows here)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)
