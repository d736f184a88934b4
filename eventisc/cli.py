"""The ``eventisc`` command (also ``python -m eventisc``).

    eventisc check [CONFIG]                     validate a config and list its listeners
    eventisc routes CONFIG EVENT_NAME           which listeners an event reaches
    eventisc trigger CONFIG EVENT_NAME [--data JSON] [--dry-run]
    eventisc schema                             print the config's JSON Schema
    eventisc demo                               a working example on this machine

Exit status: 0 success, 1 a bad config or a failed delivery, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .app import App
from .config import read_config
from .errors import ConfigError

__all__ = ["main"]


def _load(path: str | None, dry_run: bool = False) -> App:
    """Build the app as the default app would be: EVENTISC_NAME_PREFIX applies when the
    config sets no name_prefix."""
    path = path or os.environ.get("EVENTISC_CONFIG")
    if not path:
        raise ConfigError("no config given: pass CONFIG or set EVENTISC_CONFIG")
    config, source = read_config(path)
    if config.get("name_prefix") is None:
        config["name_prefix"] = os.environ.get("EVENTISC_NAME_PREFIX", "")
    if dry_run:
        config["dry_run"] = True
    return App.from_config(config, source)


def _match(listener: Any) -> str:
    if listener.event_name_regex is not None:
        return f"regex {listener.event_name_regex.pattern}"
    return f"name  {listener.event_name}"


def _show(value: Any) -> str:
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


def _check(args: argparse.Namespace) -> int:
    with _load(args.config) as app:
        where = app.source or "config"
        print(f"{where}: OK, {len(app.listeners)} listener(s), name_prefix {app.name_prefix!r}")
        for listener in app.listeners:
            target = listener.describe()
            print(f"  {listener.name}  [{listener.kind}]  {_match(listener)}")
            if target:
                print(f"      -> {target}")
            if listener.filter is not None:
                print(f"      filter: {listener.filter!r}")
    return 0


def _routes(args: argparse.Namespace) -> int:
    with _load(args.config) as app:
        full = app.name_prefix + args.event_name
        found = app.routes(args.event_name)
        if not found:
            print(f"no listener hears {full!r}")
            return 0
        print(f"{full!r} reaches {len(found)} listener(s):")
        for listener in found:
            filtered = "  (if its filter keeps the event)" if listener.filter is not None else ""
            print(f"  {listener.name}  [{listener.kind}]  {listener.describe()}{filtered}")
    return 0


def _trigger(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data) if args.data is not None else {}
    except json.JSONDecodeError as exc:
        print(f"eventisc trigger: --data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    failed = 0
    with _load(args.config, dry_run=args.dry_run) as app:
        full = app.name_prefix + args.event_name
        found = app.routes(args.event_name)
        if not found:
            print(f"no listener hears {full!r}")
            return 0
        for listener in found:
            print(f"{listener.name} [{listener.kind}]")
            try:
                if listener.filter is not None and not listener.filter(full, data):
                    print("  skipped: the filter rejected the event")
                    continue
                notification = listener.render(full, data)
                print("  " + _show(notification.payload).replace("\n", "\n  "))
                if app.dry_run:
                    print("  not sent (dry-run)")
                    continue
                detail = listener.deliver(notification)
            except Exception as exc:
                failed += 1
                print(f"  FAILED: {type(exc).__name__}: {exc}")
                continue
            if detail is False:
                print("  declined by the listener")
            else:
                print(f"  delivered{f': {detail}' if detail else ''}")
    return 1 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    from .schema import config_schema

    print(json.dumps(config_schema(), indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(amqp_url=args.amqp_url)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventisc", description="Inter-service notifications from a YAML config."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a config and list its listeners")
    p.add_argument("config", nargs="?", help="YAML or JSON config (default: $EVENTISC_CONFIG)")
    p.set_defaults(func=_check)

    p = sub.add_parser("routes", help="show which listeners an event reaches")
    p.add_argument("config")
    p.add_argument("event_name", help="event name, before the config's name_prefix")
    p.set_defaults(func=_routes)

    p = sub.add_parser("trigger", help="fire one event and show each listener's outcome")
    p.add_argument("config")
    p.add_argument("event_name", help="event name, before the config's name_prefix")
    p.add_argument("--data", help="event data as JSON (default {})")
    p.add_argument("--dry-run", action="store_true", help="render and show, do not send")
    p.set_defaults(func=_trigger)

    p = sub.add_parser("schema", help="print the configuration's JSON Schema")
    p.set_defaults(func=_schema)

    p = sub.add_parser("demo", help="run an example config against local receivers")
    p.add_argument(
        "--amqp-url",
        default=os.environ.get("EVENTISC_DEMO_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        help="RabbitMQ to use when reachable (default: local guest/guest)",
    )
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"eventisc {args.command}: {exc}", file=sys.stderr)
        return 1
