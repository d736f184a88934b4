"""A small Celery app receiving eventisc's ``celery`` notifications (for a docker-compose worker).

Run it with::

    CELERY_BROKER_URL=amqp://guest:guest@rabbitmq:5672// \\
        celery -A tasks worker -Q foo_service,celery --loglevel=INFO

and point a listener at it::

    - kind: celery
      event_name_regex: myapp[.].*_created
      queue: foo_service
      task_name: foo_handle_created
      task_kwargs:
        event_name: "{event_name}"
        event_data: "{event_data}"

The tasks are registered under the exact names the listeners send (``name=...``), since
``send_task`` addresses a task by name only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery

logger = logging.getLogger("tasks")

app = Celery(
    "tasks",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@rabbitmq:5672//"),
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    # eventisc sends notifications, nobody reads a result.
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="foo_handle_created")
def foo_handle_created(event_name: str, event_data: Any) -> None:
    """The task of the README example: the default ``task_kwargs`` call it this way."""
    logger.info("foo_handle_created: event %s with data %r", event_name, event_data)


@app.task(name="foo_handle_event_data")
def foo_handle_event_data(**kwargs: Any) -> None:
    """A task taking the event data as keyword arguments (``task_kwargs: "**event_data"``)."""
    logger.info("foo_handle_event_data: %r", kwargs)
