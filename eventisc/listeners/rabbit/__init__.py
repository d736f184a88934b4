"""The ``rabbit`` kind: publish one RabbitMQ message per event with pika 1.x.

Importing this package registers the kind. Its modules, each importing only those after it:

- :mod:`.listener`: :class:`RabbitListener`: options, the rendered message, delivery through a
  pool of connections (or, in the background, the pipelined publisher);
- :mod:`.publisher`: the pipelined publisher, many confirms in flight on one connection;
- :mod:`.session`: its I/O thread, one ``SelectConnection`` and its channel;
- :mod:`.connection`: a pooled ``BlockingConnection``, and how its waits are bounded;
- :mod:`.url`: the AMQP URL, read into pika's connection parameters at load;
- :mod:`.errors`: pika's errors as eventisc's;
- :mod:`.options`: the JSON Schema of the options and their checks.
"""

from __future__ import annotations

from ..base import mask_url, missing_driver

try:
    import pika  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_driver("rabbit", "pika", "rabbit") from exc

from .errors import ConfirmTimeout, translate_error  # noqa: E402
from .listener import RabbitListener  # noqa: E402
from .options import RABBIT_SCHEMA  # noqa: E402
from .publisher import PipelinedPublisher  # noqa: E402

__all__ = [
    "RABBIT_SCHEMA",
    "ConfirmTimeout",
    "PipelinedPublisher",
    "RabbitListener",
    "mask_url",
    "translate_error",
]
