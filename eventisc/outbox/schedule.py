"""When a relay claims: at once when there may be rows to claim, else at the slow poll.

There may be rows to claim when a NOTIFY came (rows committed), the last claim got all it asked
for, a row of an ordering key left the pending state (the next row of its key is free), or the
connection to PostgreSQL was made again (notifications sent meanwhile are lost). Otherwise the
relay waits for the poll: ``poll`` seconds, sooner when a retry it wrote falls due or when
``next_due`` says another row's due time or lease comes first. When ``next_due`` says rows are
due that the claim did not get, an earlier row of their ordering key holds them back: the relay
looks again every :data:`BLOCKED_POLL` seconds, and asks ``next_due`` only once per ``poll``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BLOCKED_POLL", "DUE_MARGIN", "Schedule"]

#: Seconds between claims while due rows are held back by an earlier row of their key.
BLOCKED_POLL = 1.0
#: Added to the wait for a row falling due: PostgreSQL's clock and ours are not the same clock.
DUE_MARGIN = 0.01


class Schedule:
    """When one relay claims next (see the module docstring); ``now`` is ``time.monotonic()``.
    ``once``: claim again after every batch of outcomes written (a relay that stops when none
    is due)."""

    def __init__(self, poll: float, now: float, once: bool = False):
        self.poll = poll
        self.once = once
        #: Whether a claim may find rows now.
        self.more = True
        #: When to claim at the latest.
        self.poll_at = now + poll
        self._ask_due_at = 0.0

    def wake(self) -> None:
        """Rows may be there to claim (a NOTIFY, a reconnection)."""
        self.more = True

    def due(self, now: float) -> bool:
        """Whether to claim now. If so, the next poll counts from now, and :attr:`more` is
        cleared before the claim: a NOTIFY that comes while it runs sets it again."""
        polled = now >= self.poll_at
        if not (self.more or polled):
            return False
        if polled:
            self.poll_at = now + self.poll
        self.more = False
        return True

    def claimed(self, got: int, asked: int) -> None:
        """A claim got ``got`` rows of the ``asked``: all of them, there may be more."""
        if got == asked:
            self.more = True

    def written(self, unblocks: bool, retry_delays: list[float], now: float) -> None:
        """Outcomes were written: rows of ordering keys left the pending state (``unblocks``),
        rows retried after ``retry_delays`` seconds."""
        if unblocks or self.once:
            self.more = True
        if retry_delays:
            self.poll_at = min(self.poll_at, now + min(retry_delays) + DUE_MARGIN)

    def found_none(self, next_due: Callable[[], float | None], now: float) -> None:
        """A claim found nothing: when to look again (``next_due`` is the statement's answer:
        seconds until a pending row is due or its lease runs out, None when none is pending)."""
        if now < self._ask_due_at:  # due rows are held back by their ordering key
            self.poll_at = now + min(BLOCKED_POLL, self.poll)
            return
        due = next_due()
        if due is None:
            wait = self.poll
        elif due > 0:
            wait = min(due + DUE_MARGIN, self.poll)
        else:  # due, yet not claimable: held back by an earlier row of their key
            self._ask_due_at = now + self.poll
            wait = min(BLOCKED_POLL, self.poll)
        self.poll_at = now + wait

    def wait(self, now: float) -> float:
        """Seconds until the relay should claim, when it has room (0: now)."""
        return 0.0 if self.more else max(0.0, self.poll_at - now)
