"""Custom listener kinds used by the tests (the way users write their own kinds)."""

from __future__ import annotations

import threading
from typing import Any

import eventisc


class RecordingListener(eventisc.Listener):
    """An event-isc style custom kind: only ``_do_notify``."""

    kind = "recording"

    def __init__(self, event_name=None, label="", fail=False, filter=None, **common):
        super().__init__(event_name, filter, **common)
        self.label = label
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def _do_notify(self, event_name, event_data):
        if self.fail:
            raise RuntimeError(f"{self.label} is broken")
        with self._lock:
            self.calls.append((event_name, event_data))
        return True


class DecliningListener(eventisc.Listener):
    kind = "declining"

    def _do_notify(self, event_name, event_data):
        return False


class TemplatedListener(eventisc.Listener):
    """A kind with a schema and templates, rendering and delivering separately."""

    kind = "templated"
    schema = {
        "properties": {
            "data": {"description": "templated payload"},
            "target": {"type": "string", "description": "where it would go"},
        },
        "required": ["data"],
    }
    delivered: list[eventisc.Notification] = []

    def __init__(self, event_name=None, data=None, target="t", filter=None, **common):
        super().__init__(event_name, filter, **common)
        self.target = target
        self._data = self.template(data, "data")

    def render(self, event_name, event_data):
        ctx = {"event_name": event_name, "event_data": event_data}
        return eventisc.Notification(
            self.name, self.kind, event_name, {"data": self._data.render(ctx)}
        )

    def deliver(self, notification):
        TemplatedListener.delivered.append(notification)
        return f"stored at {self.target}"

    def describe(self):
        return f"store {self.target}"


class PipelinedListener(eventisc.Listener):
    """A kind that delivers asynchronously: outcomes arrive later, from another thread."""

    kind = "pipelined"

    def __init__(self, event_name=None, fail_first=0, filter=None, **common):
        super().__init__(event_name, filter, **common)
        self.fail_first = fail_first
        self.sent: list[Any] = []
        self.attempts = 0
        self._lock = threading.Lock()

    def delivers_async(self):
        return True

    def deliver(self, notification):
        raise AssertionError("background delivery must go through deliver_async")

    def deliver_async(self, notification, done):
        with self._lock:
            self.attempts += 1
            failing = self.attempts <= self.fail_first

        def answer():
            if failing:
                done(None, eventisc.ConnectError("link lost"))
            else:
                with self._lock:
                    self.sent.append(notification.payload["event_data"])
                done("confirmed", None)

        threading.Timer(0.01, answer).start()
