"""The background heartbeat thread: keeps pooled broker connections alive while idle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .settings import check_seconds

__all__ = ["Heartbeat"]

logger = logging.getLogger(__name__)


class Heartbeat:
    """A daemon thread calling ``beat()`` every ``interval`` seconds until :meth:`stop`.

    An exception from ``beat`` is logged and the thread goes on.
    """

    def __init__(
        self, beat: Callable[[], object], interval: float = 60.0, name: str = "eventisc-heartbeat"
    ):
        self.interval = check_seconds("the heartbeat interval", interval)
        self._beat = beat
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._beat()
            except Exception:
                logger.exception("heartbeat failed; trying again in %ss", self.interval)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it to end."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<Heartbeat every {self.interval}s, {state}>"
