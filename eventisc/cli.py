"""The ``eventisc`` command (also ``python -m eventisc``).

    eventisc check [CONFIG]                     validate a config and list its listeners
    eventisc routes CONFIG EVENT_NAME           which listeners an event reaches
    eventisc trigger CONFIG EVENT_NAME [--data JSON] [--dry-run]
    eventisc spool list|show|replay|purge CONFIG   the spool of failed and pending notifications
    eventisc relay [CONFIG] [--concurrency N] [--once] [--metrics-port P]
                                                deliver the outbox's notifications
    eventisc outbox sql|init|list|show|replay|purge CONFIG   the outbox table
    eventisc serve-metrics CONFIG [--port 9464]  Prometheus metrics of the app, over HTTP
    eventisc schema [--markdown]                print the config's JSON Schema (or option tables)
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

from . import outbox_cli, spool_cli
from .app import App
from .config import read_config
from .errors import ConfigError, OutboxError
from .masking import mask_payload
from .report import Delivery

__all__ = ["main"]


def _load(path: str | None, dry_run: bool = False, **options: Any) -> App:
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
    config.update(options)
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
            print(f"      delivery: {_plan(app, listener)}")
    return 0


def _plan(app: App, listener: Any) -> str:
    plan = app.plan(listener.name)
    mode = "outbox" if plan.outbox else "background" if plan.background else "sync"
    attempts = plan.policy.max_attempts
    tries = f"up to {attempts} attempts" if attempts > 1 else "1 attempt"
    extra = ", durable" if plan.durable else ""
    extra += f", priority {plan.priority}" if plan.background and plan.priority else ""
    if listener.ordering_key is not None:
        extra += f", ordered by {listener.ordering_key} (on_dead: {listener.on_dead})"
    return f"{mode}, {tries}{extra}"


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
    with _load(args.config, dry_run=args.dry_run) as app:
        full = app.name_prefix + args.event_name
        report = app.dispatch(args.event_name, data)
        if not len(report):
            print(f"no listener hears {full!r}")
            return 0
        report.wait(args.wait)
        for delivery in report:
            print(f"{delivery.name} [{delivery.listener.kind}]")
            if delivery.notification is not None:
                print(f"  id {delivery.notification.id}")
                shown = _show(mask_payload(delivery.notification.payload))
                print("  " + shown.replace("\n", "\n  "))
            print("  " + _outcome(delivery))
    return 0 if all(d.ok for d in report) else 1


def _outcome(delivery: Delivery) -> str:
    if delivery.status == "skipped":
        reason = delivery.detail or "skipped"
        return {
            "filtered out": "skipped: the filter rejected the event",
            "dry-run": "not sent (dry-run)",
        }.get(reason, f"skipped: {reason}")
    attempts = f" after {delivery.attempts} attempts" if delivery.attempts > 1 else ""
    if delivery.status == "delivered":
        return f"delivered{attempts}{f': {delivery.detail}' if delivery.detail else ''}"
    if delivery.status == "pending":
        return "still pending (see --wait)"
    error = delivery.error
    why = f"{type(error).__name__}: {error}" if error is not None else ""
    if delivery.status == "spooled":
        return f"FAILED{attempts}, kept in the spool: {why}"
    return f"{delivery.status.upper()}{attempts}: {why}"


def _serve_metrics(args: argparse.Namespace) -> int:
    try:
        import prometheus_client
    except ImportError:
        print("eventisc serve-metrics needs: pip install 'eventisc[prometheus]'", file=sys.stderr)
        return 1
    with _load(args.config) as app:
        registry = prometheus_client.CollectorRegistry()
        app.register_prometheus(registry)
        server, thread = prometheus_client.start_http_server(
            args.port, addr=args.host, registry=registry
        )
        print(
            f"serving eventisc metrics on http://{args.host}:{server.server_port}/metrics",
            flush=True,
        )
        try:
            thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .config import config_schema, options_markdown

    if args.markdown:
        print(options_markdown(), end="")
    else:
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
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for background deliveries (default 60)",
    )
    p.set_defaults(func=_trigger)

    spool_cli.add_parser(sub, _load)
    outbox_cli.add_parsers(sub, _load)

    p = sub.add_parser("serve-metrics", help="serve the app's Prometheus metrics over HTTP")
    p.add_argument("config")
    p.add_argument("--port", type=int, default=9464, help="default 9464 (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=_serve_metrics)

    p = sub.add_parser("schema", help="print the configuration's JSON Schema")
    p.add_argument(
        "--markdown", action="store_true", help="print the option tables in Markdown instead"
    )
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
    except (ConfigError, OutboxError) as exc:
        print(f"eventisc {args.command}: {exc}", file=sys.stderr)
        return 1
