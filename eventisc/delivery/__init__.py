"""Delivering rendered notifications: send steps, the layers around attempts, the background.

A route's send step is picked when the route is built (:mod:`.steps`): deliver now, deliver
through the layers retrying inline, enqueue for the background workers, publish into the
listener's own pipeline, write to the outbox table (:mod:`.outboxing`), or capture / show
instead of sending. The policies around an attempt
are layers composed once per route (:mod:`.sender`): the circuit breaker (:mod:`.breaker`),
disabling a listener on ``410 Gone`` (:mod:`.gone`), retries (:mod:`.retrying`), the spool
(:mod:`.spooling`) and the recording of final outcomes — metrics, hooks, logs
(:mod:`.recording`). An attempt comes to a small value
(:mod:`.outcomes`); the :class:`~.dispatcher.Dispatcher` only schedules. :class:`Deliverer`
holds what an app's routes share and wires each of them.
"""

from .deliverer import Deliverer, Wiring
from .outboxing import OutboxBatch
from .recording import HOOK_EVENTS, Hooks, Recorder, log_failure, release_frames

__all__ = [
    "HOOK_EVENTS",
    "Deliverer",
    "Hooks",
    "OutboxBatch",
    "Recorder",
    "Wiring",
    "log_failure",
    "release_frames",
]
