"""eventisc's own Celery worker app: ``celery -A eventisc.worker worker -Q eventisc``.

The config comes from ``EVENTISC_CONFIG`` and is checked when this module is imported (a
mistake stops the worker at start). With ``celery_delivery.broker_url`` the worker consumes
that broker; with ``celery_delivery.app`` (``proj.celery:app``) the task is installed on that
app and the worker runs it (``celery -A proj.celery worker`` with
:func:`eventisc.contrib.celery.install` does the same from your own code).
"""

from __future__ import annotations

from typing import Any

import celery

from . import check
from .contrib.celery import install

__all__ = ["app", "build"]


def build() -> celery.Celery:
    """The worker's Celery app for the default eventisc app's ``celery_delivery``; a
    ConfigError when the config has none."""
    from .errors import ConfigError
    from .listeners.celery.apps import import_app

    settings = check().celery_delivery
    if settings is None:
        raise ConfigError(
            "the worker needs a `celery_delivery` (app or broker_url) in the config",
            "celery_delivery",
        )
    if settings.app is not None:
        worker = import_app(settings.app, "celery_delivery.app")
    else:
        worker = celery.Celery("eventisc", set_as_current=False)
        worker.conf.update(_conf(settings.broker_url or ""))
    worker.conf.task_default_queue = settings.queue
    install(worker)
    return worker


def _conf(url: str) -> dict[str, Any]:
    return {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        # One task at a time per worker process: a slow receiver holds one process, and the
        # tasks waiting go to the other workers.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
    }


#: The app ``celery -A eventisc.worker`` runs.
app = build()
