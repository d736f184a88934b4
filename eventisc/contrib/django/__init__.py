"""eventisc in a Django project: add ``"eventisc.contrib.django"`` to ``INSTALLED_APPS``.

- The default app is built once per process, when Django starts (:meth:`EventiscConfig.ready
  <eventisc.contrib.django.apps.EventiscConfig.ready>`), from ``settings.EVENTISC`` (a mapping
  with the keys of a config file) or ``settings.EVENTISC_CONFIG`` (a file; the environment
  variable of that name when the setting is absent), and closed when the process exits.
- A config error is reported by ``manage.py check`` (``eventisc.E001``, with its path), and
  raised again by each trigger until the config is fixed.
- :func:`trigger_on_commit` triggers once the current ``transaction.atomic`` block commits;
  with ``delivery: outbox``, a plain ``eventisc.trigger`` inside ``atomic`` writes its rows
  through Django's connection, in that transaction.
- ``manage.py eventisc check|routes|trigger|relay``: the command line, on that app.

Modules: :mod:`.apps` (the AppConfig), :mod:`.checks` (the system check), :mod:`.conf` (the
settings, the app built from them, :class:`DjangoApp`).
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction

import eventisc

from .conf import DjangoApp, build_app, config_error

__all__ = ["DjangoApp", "build_app", "config_error", "trigger_on_commit"]


def trigger_on_commit(event_name: str, event_data: Any = None, *, using: str | None = None) -> None:
    """Trigger ``event_name`` on the default app once the current ``transaction.atomic`` block
    of database ``using`` (default: ``default``) commits; never if it rolls back. Outside a
    block (autocommit) it triggers at once.

    The app is taken now (a ConfigError is raised here, in the caller's code); the event data
    is read when the transaction commits. A failure at commit time is logged as every
    delivery failure (and by Django, with ``raise_errors``), never raised into the code that
    left the block: the transaction is committed already.
    """
    app = eventisc.get_current_app()
    call = functools.partial(app.trigger, event_name, event_data)
    transaction.on_commit(call, using=using, robust=True)
