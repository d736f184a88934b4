"""``manage.py eventisc check|routes|trigger|relay``: the ``eventisc`` command line on the
process's default app (built from the settings), with the same options, output and exit
status. The subcommands are the command line's own, less their CONFIG argument."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import eventisc

from ..... import cli
from .....errors import ConfigError, OutboxError

__all__ = ["Command"]

#: The command line's subcommands this command has.
ACTIONS = ("check", "routes", "trigger", "relay")
#: Options of the command line that name the config: here, the settings do.
_NOT_MIRRORED = ("help", "config", "celery_app")


def _command_line() -> dict[str, tuple[argparse.ArgumentParser, str | None]]:
    """The command line's subcommand parsers, with their help, by name."""
    parser = cli._parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            return {name: (action.choices[name], helps.get(name)) for name in ACTIONS}
    raise AssertionError("the eventisc command line has no subcommands")  # pragma: no cover


class Command(BaseCommand):
    help = "eventisc's command line on this project's config: check, routes, trigger, relay."
    # The config's errors are this command's to report (`eventisc check`), not a reason to stop.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        self._run: dict[str, Callable[[argparse.Namespace], int]] = {}
        for name, (theirs, about) in _command_line().items():
            p = sub.add_parser(name, help=about, description=theirs.description or about)
            for action in theirs._actions:
                if action.dest not in _NOT_MIRRORED:
                    p._add_action(action)
            p.set_defaults(**{k: v for k, v in theirs._defaults.items() if k != "func"})
            self._run[name] = theirs._defaults["func"]

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        namespace = argparse.Namespace(**options)
        namespace.celery_app = None  # the config's own celery_app applies
        logger = logging.getLogger("eventisc")
        level = logger.level
        namespace.log_handler = cli._log_to_stderr(options["verbosity"] >= 2)
        app = None
        try:
            app = namespace.config = eventisc.get_current_app()
            dry_run = app.dry_run  # --dry-run holds for this command, not for the process's app
            status = self._run[action](namespace)
        except (ConfigError, OutboxError) as exc:
            raise CommandError(f"eventisc {action}: {exc}", returncode=1) from None
        finally:
            logger.removeHandler(namespace.log_handler)
            logger.setLevel(level)
            if app is not None and app.dry_run != dry_run:
                app.dry_run = dry_run
        if status:
            raise CommandError(f"eventisc {action}: exit status {status}", returncode=status)
