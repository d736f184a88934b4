"""``eventisc relay`` and ``eventisc outbox sql|init|list|show|replay|purge``."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._spool_codec import decode_payload
from .errors import ConfigError
from .masking import mask_payload
from .settings import OutboxSettings

if TYPE_CHECKING:
    from .app import App
    from .outbox.admin import Filters, OutboxRow

__all__ = ["add_parsers"]


def add_parsers(sub: Any, load: Callable[..., App]) -> None:
    """Add the ``relay`` and ``outbox`` commands; ``load(config)`` builds the app."""
    p = sub.add_parser("relay", help="deliver the outbox's notifications (runs until stopped)")
    p.add_argument("config", nargs="?", help="YAML or JSON config (default: $EVENTISC_CONFIG)")
    p.add_argument("--concurrency", type=int, help="deliveries at once (default: the config's)")
    p.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    p.add_argument("--via", choices=("celery",),
                   help="hand the rows to Celery workers (celery_delivery)")  # fmt: skip
    p.add_argument("--metrics-port", type=int, metavar="P",
                   help="serve Prometheus metrics on 127.0.0.1:P")  # fmt: skip
    p.set_defaults(func=lambda args: _relay(args, load))

    outbox = sub.add_parser("outbox", help="the outbox table: DDL, list, show, replay, purge")
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("sql", help="print the table's DDL, for your migration tool")
    p.add_argument("config", nargs="?", help="take the table name from this config")
    p.add_argument("--table", help="the table name (default: the config's, or eventisc_outbox)")
    p.set_defaults(func=lambda args: _sql(args, load))

    p = actions.add_parser("init", help="create the table and its indexes if missing")
    p.add_argument("config")
    p.set_defaults(func=lambda args: _init(args, load))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config")
        p.add_argument("--listener", help="only this listener's rows")
        p.add_argument("--older-than", metavar="AGE", help="only older ones (90s, 10m, 2h, 7d)")
        p.add_argument("--id", type=int, action="append", dest="ids", metavar="SEQ",
                       help="only this row (repeatable)")  # fmt: skip

    p = actions.add_parser("list", help="one line per row")
    common(p)
    p.add_argument("--state", choices=("pending", "dead", "delivered"), help="only this state")
    p.add_argument(
        "--blocked",
        action="store_true",
        help="only dead rows that hold back later rows of their ordering key",
    )
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    p.set_defaults(func=lambda args: _list(args, load))

    p = actions.add_parser("show", help="everything about one row (by seq or notification id)")
    p.add_argument("config")
    p.add_argument("row", metavar="SEQ_OR_ID")
    p.set_defaults(func=lambda args: _show(args, load))

    p = actions.add_parser("replay", help="dead rows back to pending: the relays deliver them")
    common(p)
    p.set_defaults(func=lambda args: _replay(args, load))

    p = actions.add_parser("purge", help="delete rows (dead ones by default)")
    common(p)
    p.add_argument("--state", choices=("pending", "dead", "delivered"), help="default: dead")
    p.add_argument("--all-states", action="store_true", help="pending and delivered ones too")
    p.set_defaults(func=lambda args: _purge(args, load))


def _settings(args: argparse.Namespace, load: Callable[..., App]) -> OutboxSettings:
    app = load(args.config, recover=False)
    try:
        settings = app.outbox_settings
    finally:
        app.close()
    if settings is None:
        raise ConfigError("this config has no `outbox`", "outbox", app.config_source)
    return settings


def _relay(args: argparse.Namespace, load: Callable[..., App]) -> int:
    with load(args.config, recover=False) as app:
        if app.outbox_settings is None:
            raise ConfigError("this config has no `outbox`", "outbox", app.config_source)
        if args.metrics_port is not None:
            _serve_metrics(app, args.metrics_port)
        return app.run_relay(concurrency=args.concurrency, once=args.once, via=args.via)


def _serve_metrics(app: App, port: int) -> None:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "--metrics-port needs: pip install 'eventisc[prometheus]'", "--metrics-port"
        ) from None
    registry = prometheus_client.CollectorRegistry()
    app.register_prometheus(registry)
    server, _ = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    print(f"serving metrics on http://127.0.0.1:{server.server_port}/metrics", flush=True)


def _sql(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.sql import ddl

    table = args.table
    if table is None:
        table = _settings(args, load).table if args.config else "eventisc_outbox"
    else:
        table = OutboxSettings(url="-", table=table).table
    print(ddl(table), end="")
    return 0


def _init(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.admin import create

    settings = _settings(args, load)
    create(settings)
    print(f"outbox table {settings.table} is ready")
    return 0


def _filters(args: argparse.Namespace, state: str | None) -> Filters:
    from .outbox.admin import Filters
    from .spool import parse_age

    try:
        older = parse_age(args.older_than) if args.older_than else None
    except ValueError as exc:
        raise ConfigError(str(exc), "--older-than") from None
    return Filters(state, args.listener, args.ids, older)


def _age(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(timezone.utc) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _line(row: OutboxRow) -> str:
    key = f" key={row.ordering_key}" if row.ordering_key is not None else ""
    error = f": {row.last_error[:120]}" if row.last_error else ""
    return (
        f"{row.seq:>8}  {row.state:9}  {_age(row.created_at):>6}  {row.attempts:>5}  "
        f"{row.listener}  {row.event_name}{key}{error}"
    )


def _list(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.admin import blocked, rows

    app = load(args.config, recover=False)
    app.close()
    settings = app.outbox_settings
    if settings is None:
        raise ConfigError("this config has no `outbox`", "outbox", app.config_source)
    if args.blocked:
        skip = [lis.name for lis in app.listeners if lis.on_dead == "skip"]
        found = blocked(settings, skip)
        print(f"{settings.table}: {len(found)} dead row(s) holding back their ordering key")
    else:
        found = rows(settings, _filters(args, args.state), args.limit)
        print(f"{settings.table}: {len(found)} row(s)")
    if found:
        print(f"{'SEQ':>8}  {'STATE':9}  {'AGE':>6}  {'TRIES':>5}  LISTENER  EVENT  ERROR")
    for row in found:
        print(_line(row))
    if args.blocked and found:
        config = shlex.quote(args.config)
        print(f"`eventisc outbox replay {config} --id SEQ` delivers one again, "
              f"`eventisc outbox purge {config} --id SEQ` deletes it")  # fmt: skip
    return 0


def _show(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.admin import get

    settings = _settings(args, load)
    row = get(settings, args.row)
    if row is None:
        print(f"no row {args.row} in {settings.table}")
        return 1
    shown = {key: value for key, value in row.__dict__.items() if key != "payload"}
    try:
        shown["payload"] = mask_payload(decode_payload(row.payload))
    except ValueError as exc:
        shown["payload"] = f"UNREADABLE ({exc}): {row.payload[:200]}"
    print(json.dumps(shown, indent=2, default=str, ensure_ascii=False))
    return 0


def _replay(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.admin import replay

    settings = _settings(args, load)
    count = replay(settings, _filters(args, "dead"))
    print(f"{count} dead row(s) back to pending in {settings.table}: the relays deliver them")
    return 0


def _purge(args: argparse.Namespace, load: Callable[..., App]) -> int:
    from .outbox.admin import purge

    settings = _settings(args, load)
    state = None if args.all_states else (args.state or "dead")
    count = purge(settings, _filters(args, state))
    print(f"removed {count} row(s) from {settings.table}")
    return 0
