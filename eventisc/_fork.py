"""Fork safety, one way for everything: objects that own threads, queues, locks or sockets.

After ``os.fork()`` the child has one thread, copies of the parent's locks (possibly held by a
thread that does not exist in the child, so never released), copies of its queues (the
parent's work) and the parent's sockets (shared with the parent: using or closing them would
disturb the parent's connections). An object that owns any of these registers with
:func:`register` and implements ``_after_fork()``: in the child, before any of its code runs
again, it drops what it inherited without touching it (no closing, no joining) and starts
empty with new locks. The parent's work stays the parent's.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["ForkSafe", "on_fork", "register"]

logger = logging.getLogger(__name__)


class ForkSafe(Protocol):
    def _after_fork(self) -> None: ...


F = TypeVar("F", bound=ForkSafe)

_OBJECTS: weakref.WeakSet[ForkSafe] = weakref.WeakSet()
_CALLBACKS: list[Callable[[], None]] = []


def register(obj: F) -> F:
    """Have ``obj._after_fork()`` called in every forked child (the object is held weakly)."""
    _OBJECTS.add(obj)
    return obj


def on_fork(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` in every forked child (for a module's own state, such as a
    module-level lock); usable as a decorator."""
    _CALLBACKS.append(callback)
    return callback


def _after_fork_in_child() -> None:
    for reset in [*_CALLBACKS, *(obj._after_fork for obj in list(_OBJECTS))]:
        try:
            reset()
        except Exception:  # one failure must not leave the others in the parent's state
            logger.exception("resetting %r after fork failed", reset)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
