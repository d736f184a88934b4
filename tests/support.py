"""Small helpers shared by the tests (the services and faults are in conftest.py, faults.py,
amqp.py and receiver.py)."""

from __future__ import annotations

from typing import Any

import pytest

from eventisc import App, TriggerError

__all__ = ["failure", "http"]


def http(url: str, event_name: str = "e", **options: Any) -> dict[str, Any]:
    """The config mapping of an http listener."""
    return {"kind": "http", "event_name": event_name, "url": url, **options}


def failure(app: App, event_name: str, data: Any = None) -> BaseException:
    """Trigger with raise_errors on and return the single failure's exception."""
    app.raise_errors = True
    with pytest.raises(TriggerError) as info:
        app.trigger(event_name, data)
    assert len(info.value.failures) == 1
    return info.value.failures[0][1]
