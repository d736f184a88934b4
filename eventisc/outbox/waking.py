"""Waking a relay when rows are committed: ``LISTEN`` on the outbox's channel.

Writers ``NOTIFY`` the channel in the transaction that writes rows, and PostgreSQL delivers it
at commit, so a notification means committed rows to claim. :class:`NotifyWaker` listens on a
connection of its own, in a daemon thread that makes no query while it waits. It calls
``wake()`` for every notification, and once each time it (re)connects: what was notified while
it was away is lost, so the relay looks for itself. PostgreSQL unreachable: it logs, and tries
again after a growing pause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import OutboxError
from ..logs import Throttle
from ..settings import OutboxSettings
from .claims import Backoff
from .sql import Statements
from .writer import connect, failure, psycopg_module

__all__ = ["NotifyWaker"]

logger = logging.getLogger(__name__)

#: Seconds between looks at whether the waker should stop, while it waits for notifications.
STOP_CHECK = 0.5


class NotifyWaker:
    """Calls ``wake()`` on every NOTIFY of the outbox's channel (see the module docstring)."""

    def __init__(self, settings: OutboxSettings, wake: Callable[[], None], name: str):
        self.settings = settings
        self.statements = Statements(settings.table, settings.channel)
        self.wake = wake
        self.name = name
        #: Whether it is listening now.
        self.listening = False
        self._stop = threading.Event()
        self._errors: type[BaseException] = psycopg_module().Error
        self._thread: threading.Thread | None = None
        self._log = Throttle(60.0)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening (waits up to ``timeout`` for the thread to end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self._listen(backoff)
            except OutboxError as exc:
                self._lost(exc, backoff)
            except self._errors as exc:
                self._lost(failure(self.settings, "lost the LISTEN connection to", exc), backoff)

    def _listen(self, backoff: Backoff) -> None:
        conn = connect(self.settings)
        try:
            conn.execute(self.statements.listen)
            self.listening = True
            backoff.reset()
            self.wake()  # notifications sent before this one connected are not coming
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=STOP_CHECK):
                    self.wake()
        finally:
            self.listening = False
            try:
                conn.close()
            except Exception:  # already broken: nothing left to close
                pass

    def _lost(self, error: OutboxError, backoff: Backoff) -> None:
        delay = backoff.next()
        skipped = self._log.ready()
        if skipped is not None:
            logger.warning(
                "outbox relay: not hearing of new rows (%s); listening again in %.1f s, polling "
                "meanwhile",
                *(error, delay),
            )
        self._stop.wait(delay)
