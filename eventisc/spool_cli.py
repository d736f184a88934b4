"""``eventisc spool list|show|replay|purge CONFIG``: look into the spool and act on it."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App
    from .spool import Spool, SpoolEntry

__all__ = ["add_parser"]


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
    p.set_defaults(func=lambda args: _replay(args, load))

    p = actions.add_parser("purge", help="delete spooled notifications (dead ones by default)")
    common(p)
    p.add_argument("--all-states", action="store_true", help="pending ones too")
    p.set_defaults(func=lambda args: _purge(args, load))


def _open(args: argparse.Namespace, load: Callable[..., App]) -> tuple[App, Spool]:
    # recover=False: the command decides what to deliver; the app must not start on its own.
    app = load(args.config, recover=False)
    spool = app._deliverer.spool
    if spool is None:
        app.close()
        raise ConfigError("this config has no `spool`", "spool", app.source)
    return app, spool


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from .spool import parse_age

    try:
        older = parse_age(args.older_than) if args.older_than else None
    except ValueError as exc:
        raise ConfigError(str(exc), "--older-than") from None
    return {"listener": args.listener, "older_than": older, "ids": args.ids}


def _age(entry: SpoolEntry) -> str:
    seconds = max(0.0, time.time() - entry.created)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _list(args: argparse.Namespace, load: Callable[..., App]) -> int:
    app, spool = _open(args, load)
    with app:
        entries = spool.entries(state=args.state, **_filters(args))
        print(f"{spool.path}: {len(entries)} notification(s)")
        if entries:
            print(
                f"{'ID':>6}  {'STATE':7}  {'AGE':>6}  {'TRIES':>5}  LISTENER  EVENT  REASON: ERROR"
            )
        for e in entries:
            error = f": {e.error[:120]}" if e.error else ""
            n = e.notification
            head = f"{e.id:>6}  {e.state:7}  {_age(e):>6}  {e.attempts:>5}"
            print(f"{head}  {n.listener}  {n.event_name}  {e.reason}{error}")
    return 0


def _show(args: argparse.Namespace, load: Callable[..., App]) -> int:
    app, spool = _open(args, load)
    with app:
        entry = spool.get(args.id)
        if entry is None:
            print(f"no entry {args.id} in {spool.path}")
            return 1
        shown = {
            "id": entry.id,
            "state": entry.state,
            "reason": entry.reason,
            "error": entry.error,
            "attempts": entry.attempts,
            "owner": entry.owner,
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created)),
            "updated": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.updated)),
            "notification": entry.notification.to_dict(),
        }
        print(json.dumps(shown, indent=2, default=repr, ensure_ascii=False))
    return 0


def _replay(args: argparse.Namespace, load: Callable[..., App]) -> int:
    """One attempt per notification: dead ones, and pending ones no live process owns."""
    app, spool = _open(args, load)
    by_name = {listener.name: listener for listener in app.listeners}
    filters = _filters(args)
    delivered = failed = 0
    with app:
        entries = spool.entries(state="dead", **filters)
        orphans = {e.id for e in spool.claim_orphans(list(by_name))}
        if orphans:
            entries += spool.entries(state="pending", **{**filters, "ids": _ids(orphans, args)})
        for entry in entries:
            n = entry.notification
            listener = by_name.get(n.listener)
            if listener is None:
                print(f"{entry.id}: no listener named {n.listener!r} in the config; kept")
                failed += 1
                continue
            try:
                detail = listener.deliver(n)
            except Exception as exc:
                failed += 1
                spool.give_up(entry.id, error=f"{type(exc).__name__}: {exc}",
                              attempts=entry.attempts + 1, reason=entry.reason)  # fmt: skip
                print(f"{entry.id}: {n.listener} {n.event_name}: FAILED, kept: {exc}")
                continue
            spool.delivered(entry.id)
            delivered += 1
            print(f"{entry.id}: {n.listener} {n.event_name}: delivered ({detail}), removed")
    print(f"replayed {delivered + failed}: {delivered} delivered, {failed} kept")
    return 1 if failed else 0


def _ids(orphans: set[int], args: argparse.Namespace) -> list[int]:
    return sorted(orphans if not args.ids else orphans & set(args.ids))


def _purge(args: argparse.Namespace, load: Callable[..., App]) -> int:
    app, spool = _open(args, load)
    with app:
        state = None if args.all_states else (args.state or "dead")
        removed = spool.purge(state=state, **_filters(args))
        print(f"removed {removed} notification(s) from {spool.path}")
    return 0
