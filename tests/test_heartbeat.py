"""The heartbeat thread: calls the app's heartbeat, survives errors, stops."""

from __future__ import annotations

import logging
import threading

import pytest

import eventisc
from eventisc import Heartbeat

from .kinds import RecordingListener


class Beating(RecordingListener):
    def __init__(self, *args, fail_first=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.beats = 0
        self.fail_first = fail_first
        self.beat = threading.Event()

    def heartbeat(self):
        self.beats += 1
        if self.beats <= self.fail_first:
            raise RuntimeError("broker unreachable")
        self.beat.set()


def test_heartbeat_thread_survives_errors_and_stops(caplog):
    listener = Beating("e", fail_first=2)
    app = eventisc.create_app(listeners=[listener])
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        handle = app.start_heartbeat(0.02)
        assert listener.beat.wait(5), "the thread died after the first errors"
    assert listener.beats >= 3
    assert "broker unreachable" in caplog.text
    assert handle.alive
    handle.stop()
    assert not handle.alive
    beats = listener.beats
    threading.Event().wait(0.1)
    assert listener.beats == beats


def test_heartbeat_from_config_and_stopped_by_close():
    listener = Beating("e")
    app = eventisc.create_app(listeners=[listener], heartbeat=0.02)
    assert listener.beat.wait(5)
    handle = app._heartbeat
    app.close()
    assert handle is not None and not handle.alive


def test_module_level_heartbeat_and_start_heartbeat():
    listener = Beating("e")
    eventisc.init_default_app(listeners=[listener])
    eventisc.heartbeat()
    assert listener.beats == 1
    handle = eventisc.start_heartbeat(0.02)
    try:
        assert isinstance(handle, Heartbeat)
        listener.beat.clear()
        assert listener.beat.wait(5)
    finally:
        handle.stop()


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        Heartbeat(lambda: None, 0)
    with pytest.raises(eventisc.ConfigError, match="heartbeat"):
        eventisc.create_app(heartbeat=-1)
