"""``eventisc spool list|show|replay|purge CONFIG``: look into the spool and act on it."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .masking import mask_payload

if TYPE_CHECKING:
    from .app import App
    from .listeners.base import Listener
    from .spool import Spool, SpoolEntry, UnreadableEntry

__all__ = ["add_celery_app", "add_parser"]


def add_celery_app(p: argparse.ArgumentParser) -> None:
    """The ``--celery-app MODULE:ATTR`` option of the commands that deliver."""
    p.add_argument(
        "--celery-app",
        metavar="MODULE:ATTR",
        help="your Celery app (proj.celery:app), for celery listeners without a broker_url; "
        "replaces the config's celery_app",
    )


def add_parser(sub: Any, load: Callable[..., App]) -> None:
    """Add the ``spool`` command and its subcommands; ``load(config)`` builds the app."""
    spool = sub.add_parser("spool", help="list, show, replay or purge spooled notifications")
    actions = spool.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser, state: bool = True) -> None:
        p.add_argument("config", help="the config whose `spool` to use")
        p.add_argument("--listener", help="only this listener's notifications")
        p.add_argument("--older-than", metavar="AGE", help="only older ones (90s, 10m, 2h, 7d)")
        p.add_argument("--id", type=int, action="append", dest="ids", metavar="ID",
                       help="only this entry (repeatable)")  # fmt: skip
        if state:
            p.add_argument("--state", choices=("pending", "dead"), help="only this state")

    p = actions.add_parser("list", help="one line per spooled notification")
    common(p)
    p.set_defaults(func=lambda args: _list(args, load))

    p = actions.add_parser("show", help="everything about one notification")
    p.add_argument("config")
    p.add_argument("id", type=int)
    p.set_defaults(func=lambda args: _show(args, load))

    p = actions.add_parser(
        "replay",
        help="deliver again with the listeners' current settings; delivered ones are removed",
    )
    common(p, state=False)
    add_celery_app(p)
    p.set_defaults(func=lambda args: _replay(args, load))

    p = actions.add_parser("purge", help="delete spooled notifications (dead ones by default)")
    common(p)
    p.add_argument("--all-states", action="store_true", help="pending ones too")
    p.set_defaults(func=lambda args: _purge(args, load))


def _open(args: argparse.Namespace, load: Callable[..., App]) -> tuple[App, Spool]:
    # recover=False: the command decides what to deliver; the app must not start on its own.
    app = load(args.config, recover=False, celery_app=getattr(args, "celery_app", None))
    spool = app._deliverer.spool
    if spool is None:
        app.close()
        raise ConfigError("this config has no `spool`", "spool", app.config_source)
    return app, spool


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from .spool import parse_age

    try:
        older = parse_age(args.older_than) if args.older_than else None
    except ValueError as exc:
        raise ConfigError(str(exc), "--older-than") from None
    return {"listener": args.listener, "older_than": older, "ids": args.ids}


def _stamp(value: Any) -> float | None:
    """A Unix time column's value, None when it is damaged (an unreadable row's)."""
    return value if isinstance(value, (int, float)) else None


def _age(created: Any) -> str:
    stamp = _stamp(created)
    if stamp is None:
        return "?"
    seconds = max(0.0, time.time() - stamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _when(value: Any) -> Any:
    stamp = _stamp(value)
    return value if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _oldest_first(item: SpoolEntry | UnreadableEntry) -> tuple[float, int]:
    stamp = _stamp(item.created)
    return (math.inf if stamp is None else stamp), item.id


def _hint(config: str, entry_id: int | str) -> str:
    config = shlex.quote(config)
    return (
        f"`eventisc spool show {config} {entry_id}` shows it as stored, "
        f"`eventisc spool purge {config} --id {entry_id}` deletes it"
    )


def _list(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .spool import UnreadableEntry

    app, spool = _open(args, load)
    with app:
        filters = {**_filters(args), "state": args.state}
        bad = spool.unreadable(**filters)
        found: list[SpoolEntry | UnreadableEntry] = [*spool.entries(**filters), *bad]
        found.sort(key=_oldest_first)
        more = f", {len(bad)} unreadable" if bad else ""
        print(f"{spool.path}: {len(found)} notification(s){more}")
        if found:
            print(
                f"{'ID':>6}  {'STATE':7}  {'AGE':>6}  {'TRIES':>5}  LISTENER  EVENT  REASON: ERROR"
            )
        for e in found:
            head = f"{e.id:>6}  {e.state!s:7}  {_age(e.created):>6}  {e.attempts!s:>5}"
            if isinstance(e, UnreadableEntry):
                print(f"{head}  {e.listener!s}  {e.event_name!s}  UNREADABLE: {e.problem[:120]}")
                continue
            error = f": {e.error[:120]}" if e.error else ""
            n = e.notification
            print(f"{head}  {n.listener}  {n.event_name}  {e.reason}{error}")
        if bad:
            print(f"unreadable entries are never delivered: {_hint(args.config, 'ID')}")
    return 0


def _fields(item: SpoolEntry | UnreadableEntry) -> dict[str, Any]:
    return {
        "id": item.id,
        "state": item.state,
        "reason": item.reason,
        "error": item.error,
        "attempts": item.attempts,
        "owner": item.owner,
        "created": _when(item.created),
        "updated": _when(item.updated),
    }


def _show(args: argparse.Namespace, load: Callable[..., App]) -> int:
    app, spool = _open(args, load)
    with app:
        bad = spool.unreadable(ids=[args.id])
        if bad:  # as stored: the payload is the raw text
            b = bad[0]
            stored = {"id": b.notification_id, "listener": b.listener, "kind": b.kind,
                      "event_name": b.event_name, "payload": b.payload}  # fmt: skip
            shown = {**_fields(b), "unreadable": b.problem, "stored": stored}
        else:
            entry = spool.get(args.id)
            if entry is None:
                print(f"no entry {args.id} in {spool.path}")
                return 1
            n = entry.notification
            # The notification's own id is the one its receivers see (the entry's is the file's).
            notification = {
                "id": n.id,
                "listener": n.listener,
                "kind": n.kind,
                "event_name": n.event_name,
                "payload": mask_payload(n.payload),
            }
            shown = {**_fields(entry), "notification": notification}
        print(json.dumps(shown, indent=2, default=repr, ensure_ascii=False))
    return 0


def _replay(args: argparse.Namespace, load: Callable[..., App]) -> int:
    """One attempt per notification: dead ones, and pending ones no live process owns.

    Each is claimed first (atomically, as pending owned by this process), so that concurrent
    replays and apps never take the same one; what is not attempted when this process stops
    on an error or Ctrl-C is given back as it was, and what a killed replay held is taken over
    as orphans.
    """
    app, spool = _open(args, load)
    by_name = {listener.name: listener for listener in app.listeners}
    filters = _filters(args)
    names = [name for name in by_name if args.listener in (None, name)]
    claim = {"older_than": filters["older_than"], "ids": filters["ids"]}
    delivered = done = 0
    with app:
        dead = spool.claim_dead(names, **claim)
        entries = dead + spool.claim_orphans(names, **claim)
        unreadable, strays = _not_replayable(spool, set(by_name), args.config, filters)
        try:
            for entry in entries:
                delivered += _replay_one(spool, by_name[entry.notification.listener], entry)
                done += 1
        finally:
            _give_back(spool, entries[done:], {entry.id for entry in dead})
    kept = len(entries) - delivered + unreadable + strays
    more = f" ({unreadable} unreadable)" if unreadable else ""
    print(f"replayed {delivered + kept}: {delivered} delivered, {kept} kept{more}")
    return 1 if kept else 0


def _not_replayable(
    spool: Spool, known: set[str], config: str, filters: dict[str, Any]
) -> tuple[int, int]:
    """Print the dead entries left after the claims that no replay can deliver (unreadable,
    or of a listener the config does not have); return how many of each."""
    bad = spool.unreadable(state="dead", **filters)
    for item in bad:
        print(f"{item.id}: UNREADABLE, kept: {item.problem}; {_hint(config, item.id)}")
    strays = [
        e for e in spool.entries(state="dead", **filters) if e.notification.listener not in known
    ]
    for entry in strays:
        n = entry.notification
        print(f"{entry.id}: no listener named {n.listener!r} in the config; kept")
    return len(bad), len(strays)


def _replay_one(spool: Spool, listener: Listener, entry: SpoolEntry) -> bool:
    """One attempt; True if delivered (and removed), False if kept with its new error."""
    n = entry.notification
    try:
        detail = listener.deliver(n)
    except Exception as exc:
        spool.give_up(entry.id, error=f"{type(exc).__name__}: {exc}",
                      attempts=entry.attempts + 1, reason=entry.reason)  # fmt: skip
        print(f"{entry.id}: {n.listener} {n.event_name}: FAILED, kept: {exc}")
        return False
    spool.delivered(entry.id)
    print(f"{entry.id}: {n.listener} {n.event_name}: delivered ({detail}), removed")
    return True


def _give_back(spool: Spool, entries: Sequence[SpoolEntry], dead: set[int]) -> None:
    """Undo the claims of entries not attempted: dead ones dead again, orphans unowned."""
    for entry in entries:
        if entry.id in dead:
            spool.give_up(entry.id, error=entry.error, attempts=entry.attempts,
                          reason=entry.reason)  # fmt: skip
    spool.release([entry.id for entry in entries if entry.id not in dead])


def _purge(args: argparse.Namespace, load: Callable[..., App]) -> int:
    app, spool = _open(args, load)
    with app:
        state = None if args.all_states else (args.state or "dead")
        removed = spool.purge(state=state, **_filters(args))
        print(f"removed {removed} notification(s) from {spool.path}")
    return 0
