"""The ``eventisc`` command (also ``python -m eventisc``).

    eventisc check [CONFIG]                     validate a config and list its listeners
    eventisc routes CONFIG EVENT_NAME           which listeners an event reaches
    eventisc trigger CONFIG EVENT_NAME [--data JSON] [--dry-run] [--celery-app MODULE:ATTR]
    eventisc spool list|show|replay|purge CONFIG   the spool of failed and pending notifications
    eventisc relay [CONFIG] [--concurrency N] [--once] [--metrics-port P]
                                                deliver the outbox's notifications
    eventisc outbox sql|init|list|show|replay|purge CONFIG   the outbox table
    eventisc serve-metrics [--dir DIR] [--port 9464]  a multiprocess service's metrics, added up
    eventisc schema [--markdown]                print the config's JSON Schema (or option tables)
    eventisc demo                               a working example on this machine

Exit status: 0 success, 1 a bad config or a failed delivery, 2 bad usage, 141 when standard
output was closed early (``eventisc spool list CONFIG | head``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from . import outbox_cli, spool_cli
from .app import App
from .config import read_config
from .errors import ConfigError, OutboxError
from .masking import mask_payload
from .report import Delivery
from .spool_cli import add_celery_app

__all__ = ["main"]

#: The exit status when standard output was closed early (128 + SIGPIPE, as a shell reports a
#: command that a closed pipe stopped).
CLOSED_PIPE = 141

#: How the command shows eventisc's log records on stderr.
LOG_FORMAT = "eventisc: %(levelname)s: %(message)s"


def _load(
    path: str | App | None,
    dry_run: bool = False,
    celery_app: str | None = None,
    **options: Any,
) -> App:
    """Build the app as the default app would be: EVENTISC_NAME_PREFIX applies when the
    config sets no name_prefix. ``celery_app`` (``--celery-app``) replaces the config's.
    An App given instead of a path is used as it is (``manage.py eventisc``: the process's
    default app), in dry-run mode with ``dry_run``."""
    if isinstance(path, App):
        if dry_run:
            path.dry_run = True
        return path
    from_environ = os.environ.get("EVENTISC_CONFIG")
    if not path and from_environ:
        try:
            return _load(from_environ, dry_run, celery_app, **options)
        except ConfigError as exc:  # say where the file's name came from
            raise exc.from_origin(f"EVENTISC_CONFIG={from_environ}") from None
    if not path:
        raise ConfigError("no config given: pass CONFIG or set EVENTISC_CONFIG")
    config, source = read_config(path)
    overrides = dict(options)  # applied again by a reload (SIGHUP)
    if config.get("name_prefix") is None:
        overrides["name_prefix"] = os.environ.get("EVENTISC_NAME_PREFIX", "")
    if dry_run:
        overrides["dry_run"] = True
    if celery_app is not None:
        overrides["celery_app"] = celery_app
    config.update(overrides)
    return App.from_config(config, source, overrides=overrides)


def _match(listener: Any) -> str:
    if listener.event_name_regex is not None:
        return f"regex {listener.event_name_regex.pattern}"
    return f"name  {listener.event_name}"


def _show(value: Any) -> str:
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


def _check(args: argparse.Namespace) -> int:
    with _load(args.config, celery_app=args.celery_app) as app:
        where = app.config_source or "config"
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


def _prefix_hint(app: App, event_name: str) -> str:
    """A hint when ``event_name`` already starts with the name_prefix (added twice)."""
    prefix = app.name_prefix
    if not (prefix and event_name.startswith(prefix)):
        return ""
    short = event_name[len(prefix) :]
    return (
        f"note: the name_prefix {prefix!r} is added to the name you give, so it is there "
        f"twice; give {short!r} instead (it reaches {len(app.routes(short))} listener(s))"
    )


def _unheard(app: App, event_name: str) -> str:
    """``no listener hears 'shop.x'``, and the hint when the prefix was given twice."""
    hint = _prefix_hint(app, event_name)
    return f"no listener hears {app.name_prefix + event_name!r}" + (f"\n{hint}" if hint else "")


def _routes(args: argparse.Namespace) -> int:
    with _load(args.config) as app:
        full = app.name_prefix + args.event_name
        found = app.routes(args.event_name)
        if not found:
            print(_unheard(app, args.event_name))
            return 0
        print(f"{full!r} reaches {len(found)} listener(s):")
        for listener in found:
            filtered = "  (if its filter keeps the event)" if listener.filter is not None else ""
            print(f"  {listener.name}  [{listener.kind}]  {listener.describe()}{filtered}")
        hint = _prefix_hint(app, args.event_name)
        if hint:
            print(hint)
    return 0


def _trigger(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data) if args.data is not None else {}
    except json.JSONDecodeError as exc:
        print(f"eventisc trigger: --data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    with _load(args.config, dry_run=args.dry_run, celery_app=args.celery_app) as app:
        # Each outcome is printed below: the log's record of the same failure would repeat it.
        with _quiet_failures(args):
            report = app.dispatch(args.event_name, data)
            if not len(report):
                print(_unheard(app, args.event_name))
                return 0
            report.wait(args.wait)
        for delivery in report:
            print(f"{delivery.name} [{delivery.listener.kind}]")
            if delivery.notification is not None:
                print(f"  id {delivery.notification.id}")
                shown = _show(mask_payload(delivery.notification.payload))
                print("  " + shown.replace("\n", "\n  "))
            print("  " + _outcome(delivery))
        hint = _prefix_hint(app, args.event_name)
        if hint:
            print(hint)
    return 0 if all(d.ok for d in report) else 1


class _Reported(logging.Filter):
    """Leaves out the records of final failures: the command prints each outcome itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "outcome", None) not in ("failed", "spooled", "dropped")


@contextmanager
def _quiet_failures(args: argparse.Namespace) -> Iterator[None]:
    """While a command prints the outcomes itself, its log handler leaves out their records
    (not with ``--verbose``: then they come with their tracebacks)."""
    handler: logging.Handler | None = getattr(args, "log_handler", None)
    if handler is None or handler.level <= logging.DEBUG:
        yield
        return
    reported = _Reported()
    handler.addFilter(reported)
    try:
        yield
    finally:
        handler.removeFilter(reported)


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
        kept = f" as #{delivery.spool_id}" if delivery.spool_id is not None else ""
        return f"FAILED{attempts}, kept in the spool{kept}: {why}"
    return f"{delivery.status.upper()}{attempts}: {why}"


def _serve_metrics(args: argparse.Namespace) -> int:
    path = args.dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        print(
            "eventisc serve-metrics: pass --dir or set PROMETHEUS_MULTIPROC_DIR (the directory "
            "the service's processes write their metrics to)",
            file=sys.stderr,
        )
        return 2
    try:
        from .metrics_server import serve_directory
    except ImportError:
        print("eventisc serve-metrics needs: pip install 'eventisc[prometheus]'", file=sys.stderr)
        return 1
    try:
        server = serve_directory(path, args.port, args.host)
    except ValueError:
        print(f"eventisc serve-metrics: {path} is not a directory", file=sys.stderr)
        return 2
    print(f"serving the metrics of {path} on {server.url}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at DEBUG on stderr: each delivery, and the traceback of each failure",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a config and list its listeners")
    p.add_argument("config", nargs="?", help="YAML or JSON config (default: $EVENTISC_CONFIG)")
    add_celery_app(p)
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
    add_celery_app(p)
    p.set_defaults(func=_trigger)

    spool_cli.add_parser(sub, _load)
    outbox_cli.add_parsers(sub, _load)

    about = (
        "serve the Prometheus metrics the processes of a multiprocess service (gunicorn, Celery "
        "prefork) write to PROMETHEUS_MULTIPROC_DIR, added up; a service of one process "
        "serves its own with eventisc.start_metrics_server()"
    )
    p = sub.add_parser("serve-metrics", help=about, description=about)
    p.add_argument("--dir", help="the directory (default: $PROMETHEUS_MULTIPROC_DIR)")
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


def _log_to_stderr(verbose: bool) -> logging.Handler:
    """Show eventisc's log records on stderr: WARNING and above (DEBUG with ``--verbose``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger = logging.getLogger("eventisc")
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.DEBUG)
    return handler


def _closed_pipe() -> int:
    """Standard output was closed early (``| head``): stop quietly. Further writes, and the
    flush at exit, go to devnull (see "Note on SIGPIPE" in Python's ``signal`` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (captured output): nothing to redirect
        pass
    return CLOSED_PIPE


def _import_from_here() -> None:
    """Let ``--celery-app proj.celery:app`` import from the current directory, as
    ``python -m eventisc`` and ``celery -A`` do (the ``eventisc`` script alone would not)."""
    try:
        here = os.getcwd()
    except OSError:  # the directory was removed: nothing to import from there
        return
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _import_from_here()
    args.log_handler = _log_to_stderr(args.verbose)
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return result
    except BrokenPipeError:
        return _closed_pipe()
    except (ConfigError, OutboxError) as exc:
        print(f"eventisc {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        logger = logging.getLogger("eventisc")
        logger.removeHandler(args.log_handler)
        if args.verbose:
            logger.setLevel(logging.NOTSET)
