"""Which process owns a pending spool row, and whether that process still runs."""

from __future__ import annotations

import os
import socket

__all__ = ["is_alive", "owner_id", "this_process"]


def _proc_stat(pid: int | str) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` from Linux's /proc, None if absent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()  # the command name in (...) may hold spaces
    return fields[0].decode(), fields[19].decode()


def _host() -> str:
    # The pid namespace tells apart containers that share a hostname: their pids are not ours.
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace.strip('pid:[]')}"


_owner: tuple[int, str, str] = (-1, "", "")  # (pid, host, owner id) of this process


def owner_id() -> str:
    """This process's owner id, ``host:pid:start``; a recycled pid gets a different one."""
    return this_process()[2]


def this_process() -> tuple[int, str, str]:
    """``(pid, host, owner id)`` of the running process (recomputed after a fork)."""
    global _owner
    pid = os.getpid()
    if _owner[0] != pid:
        stat = _proc_stat("self")
        host = _host()
        _owner = (pid, host, f"{host}:{pid}:{stat[1] if stat else ''}")
    return _owner


def is_alive(pid: int, start: str) -> bool | None:
    """Whether process ``pid`` of this host, started at ``start``, still runs; None: unknown."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X"):
            return False  # exited, not yet reaped by its parent
        return not start or stat[1] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, but not ours to signal
    return True  # no /proc (or hidden): the pid exists, assume it is the same process
