"""eventisc's own Celery worker app: ``celery -A eventisc.worker worker -Q eventisc``.

The config comes from ``EVENTISC_CONFIG`` and is checked when this module is imported (a
mistake stops the worker at start). With ``celery_delivery.broker_url`` the worker consumes
that broker; with ``celery_delivery.app`` (``proj.celery:app``) the task is installed on that
app and the worker runs it (``celery -A proj.celery worker`` with
:func:`eventisc.contrib.celery.install` does the same from your own code).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

import celery

from . import check
from .contrib.celery import install

__all__ = ["METRICS_ADDR_ENV", "METRICS_PORT_ENV", "app", "build", "serve_metrics"]

logger = logging.getLogger("eventisc.worker")

#: The variable that has the worker serve ``/metrics`` on this port.
METRICS_PORT_ENV = "EVENTISC_METRICS_PORT"
#: The address it listens on (default 127.0.0.1; 0.0.0.0 for a scrape from elsewhere).
METRICS_ADDR_ENV = "EVENTISC_METRICS_ADDR"


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
        # Celery reads CELERY_BROKER_URL over broker_url, not over these: the config's broker
        # is the one the worker consumes from and publishes its retries to.
        "broker_read_url": url,
        "broker_write_url": url,
        "broker_connection_retry_on_startup": True,
        # One task at a time per worker process: a slow receiver holds one process, and the
        # tasks waiting go to the other workers.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
    }


def metrics_port() -> int | None:
    """The port of ``EVENTISC_METRICS_PORT`` (None when unset); a ConfigError naming the
    variable when it is not a port number."""
    from .errors import ConfigError

    value = os.environ.get(METRICS_PORT_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) > 65535:
        raise ConfigError(f"must be a port number (0-65535), not {value!r}", METRICS_PORT_ENV)
    return int(value)


def serve_metrics(port: int) -> None:
    """Have this worker serve ``/metrics`` on ``port`` once it is ready, adding up its pool
    processes through Prometheus' multiprocess mode (a temporary directory of the worker's
    own, removed at its exit, when ``PROMETHEUS_MULTIPROC_DIR`` is unset). Call it before the
    default app is built: every process that builds it then writes its numbers there."""
    from celery.signals import worker_process_shutdown, worker_ready

    from .errors import ConfigError

    try:
        from .multiproc import ENV
    except ImportError:  # prometheus_client
        raise ConfigError(
            "serving metrics needs: pip install 'eventisc[prometheus]'", METRICS_PORT_ENV
        ) from None
    if not os.environ.get(ENV):
        path = tempfile.mkdtemp(prefix="eventisc-worker-metrics-")
        os.environ[ENV] = path
        atexit.register(_remove, path, os.getpid())
    addr = os.environ.get(METRICS_ADDR_ENV) or "127.0.0.1"

    def serve(**kwargs: Any) -> None:
        from . import start_metrics_server

        try:
            server = start_metrics_server(port, addr)
        except OSError as exc:  # the port is taken: the worker delivers all the same
            logger.error("cannot serve the worker's metrics on %s:%s: %s", addr, port, exc)
            return
        logger.info("serving the worker's metrics at %s", server.url)

    worker_ready.connect(serve, weak=False)
    worker_process_shutdown.connect(_last_numbers, weak=False)


def _remove(path: str, owner: int) -> None:
    if os.getpid() == owner:  # never from a pool process
        shutil.rmtree(path, ignore_errors=True)


def _last_numbers(pid: int | None = None, **kwargs: Any) -> None:
    """A prefork pool process ends without Python's exit: finish its deliveries, write its
    numbers a last time, and mark it dead (its live gauges leave the sums)."""
    from prometheus_client import multiprocess

    from . import default_app
    from .prometheus import writer

    if default_app is not None:
        default_app.close()
    last = writer()
    if last is not None:
        last.stop()
    multiprocess.mark_process_dead(pid if pid is not None else os.getpid())


_port = metrics_port()
if _port is not None:
    serve_metrics(_port)

#: The app ``celery -A eventisc.worker`` runs.
app = build()
