"""The ``celery`` kind: send a task by name with ``app.send_task`` (no task code needed).

Importing this package registers the kind. Its modules, each importing only those after it:

- :mod:`.listener`: :class:`CeleryListener`: options, the rendered task, delivery;
- :mod:`.apps`: eventisc's own Celery apps, and the settings bounding every publish;
- :mod:`.errors`: what ``send_task`` raises, as eventisc's errors;
- :mod:`.options`: the JSON Schema of the options and their checks.
"""

from __future__ import annotations

from ..base import missing_driver

try:
    import celery  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_driver("celery", "celery", "celery") from exc

from .apps import publish_options  # noqa: E402
from .errors import translate_error  # noqa: E402
from .listener import CeleryListener  # noqa: E402
from .options import CELERY_SCHEMA, DEFAULT_TIMEOUT  # noqa: E402

__all__ = [
    "CELERY_SCHEMA",
    "DEFAULT_TIMEOUT",
    "CeleryListener",
    "publish_options",
    "translate_error",
]
