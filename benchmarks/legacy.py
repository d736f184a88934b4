"""event-isc 0.1.0, the package eventisc replaces, as a reference in a process of its own.

Both packages are imported as ``eventisc``, so event-isc lives in its own virtualenv,
``benchmarks/.venv-event-isc``, created by the benchmark command on first use (pip, from PyPI)
and kept for later runs. :class:`Legacy` talks to :mod:`benchmarks.legacy_worker` running
there: one JSON line per request, one JSON line back. When the virtualenv cannot be made or the
worker does not start, the reference is skipped and the reason says why.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

from .harness import Skip

__all__ = ["VENV", "Legacy"]

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-event-isc"
#: What the reference needs: event-isc and the drivers its listeners import (Celery's redis
#: extra: for Celery on Redis).
REQUIREMENTS = ("event-isc==0.1.0", "environs", "requests", "celery[redis]", "pika>=1,<2")
_MARKER = VENV / ".installed"


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(install: bool, log: Any = print) -> Path:
    """The virtualenv's python, creating the virtualenv first when ``install`` allows.

    Raises :class:`Skip` with the reason when it is not there and cannot be made.
    """
    wanted = "\n".join(REQUIREMENTS)
    if _MARKER.exists() and _MARKER.read_text() == wanted and _python().exists():
        return _python()
    if not install:
        raise Skip(f"{VENV.name} is not installed and --no-install was given")
    log(f"installing the event-isc reference into {VENV} (once; kept for later runs) ...")
    shutil.rmtree(VENV, ignore_errors=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        proc = subprocess.run(
            [
                str(_python()),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *REQUIREMENTS,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(VENV, ignore_errors=True)
        raise Skip(f"could not create {VENV.name}: {exc}") from None
    if proc.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise Skip(f"pip could not install {', '.join(REQUIREMENTS)}: {tail}")
    _MARKER.write_text(wanted)
    return _python()


class Legacy:
    """A running :mod:`benchmarks.legacy_worker`; :meth:`call` sends one request."""

    def __init__(self, python: Path):
        self.python = python
        # -I: neither the current directory nor PYTHONPATH may put our eventisc on the path.
        self._cwd = tempfile.mkdtemp(prefix="eventisc-bench-legacy-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTISC_", "PYTHON"))}
        self.proc = subprocess.Popen(
            [str(python), "-I", str(HERE / "legacy_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=self._cwd,
            env=env,
        )
        try:
            self.info = self.call({"op": "hello"}, timeout=60)
        except Exception:
            self.close()
            raise
        if "site-packages" not in self.info.get("file", ""):
            self.close()
            raise Skip(f"the worker imported the wrong eventisc: {self.info.get('file')}")

    def call(self, request: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """Send a request, wait up to ``timeout`` seconds for the answer.

        Raises :class:`Skip` when the worker reports an error, RuntimeError when it died or
        did not answer (it is then stopped).
        """
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise RuntimeError(f"the event-isc worker is gone: {exc}") from None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"the event-isc worker did not answer {request['op']!r} in time")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise Skip(f"event-isc failed: {answer.get('error')}")
        return answer

    def memory(self, listeners: int) -> dict[str, Any]:
        """Peak RSS of a fresh event-isc process holding ``listeners`` listeners."""
        proc = subprocess.run(
            [str(self.python), "-I", str(HERE / "legacy_worker.py"), "--memory", str(listeners)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self._cwd,
        )
        if proc.returncode != 0:
            raise Skip(f"event-isc memory run failed: {proc.stderr.strip()[-200:]}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self._cwd, ignore_errors=True)


def start(install: bool, log: Any = print) -> tuple[Legacy | None, str]:
    """The reference worker, or None and the reason it is skipped."""
    try:
        legacy = Legacy(ensure_venv(install, log))
    except Skip as exc:
        return None, str(exc)
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"the event-isc worker did not start: {exc}"
    return legacy, ""


if __name__ == "__main__":  # python -m benchmarks.legacy: install (or check) the reference
    worker, reason = start(install=True)
    print(json.dumps(worker.info if worker else {"skipped": reason}, indent=2))
    if worker:
        worker.close()
    sys.exit(0 if worker else 1)
