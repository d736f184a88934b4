"""Reloading the config without a restart: app.reload() and SIGHUP to ``eventisc relay``,
against a real receiver (and the real PostgreSQL for the relay)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import eventisc
from eventisc import ConfigError

from .outbox_support import hook, stored, write
from .receiver import Receiver, Response
from .support import wait_for


def write_config(path: Path, listeners: list[dict[str, Any]], **top: Any) -> str:
    path.write_text(yaml.safe_dump({**top, "listeners": listeners}))
    return str(path)


def paths(receiver: Receiver) -> list[str]:
    return sorted(request.path for request in receiver.requests)


def test_a_reload_keeps_unchanged_listeners_and_applies_the_rest(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = tmp_path / "events.yaml"
    kept, changed, removed = (
        hook(receiver, "kept"),
        hook(receiver, "changed"),
        hook(receiver, "gone"),
    )
    write_config(config, [kept, changed, removed])
    with eventisc.create_app(config_file=str(config)) as app:
        assert app.trigger("e", {"n": 1}) == 3
        before = {listener.name: listener for listener in app.listeners}
        write_config(config, [kept, {**changed, "url": f"{receiver.url}/changed-v2"},
                              hook(receiver, "added")])  # fmt: skip
        changes = app.reload()
        assert changes == {"added": ["added"], "changed": ["changed"], "removed": ["gone"],
                           "kept": ["kept"]}  # fmt: skip
        after = {listener.name: listener for listener in app.listeners}
        assert after["kept"] is before["kept"]  # its connections and metrics too
        assert app.stats()["listeners"]["kept"]["delivered"] == 1
        assert app.trigger("e", {"n": 2}) == 3
    assert paths(receiver) == sorted(
        ["/kept", "/changed", "/gone", "/kept", "/changed-v2", "/added"]
    )


def test_a_bad_config_is_refused_and_the_old_one_stays(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "events.yaml"
    write_config(config, [hook(receiver, "hook")])
    with eventisc.create_app(config_file=str(config)) as app:
        write_config(config, [{**hook(receiver, "hook"), "urll": "typo"}])
        with pytest.raises(ConfigError, match="unknown option 'urll'"):
            app.reload()
        assert app.trigger("e", {"n": 1}) == 1
    assert paths(receiver) == ["/hook"]


def test_other_top_level_keys_need_a_restart_and_say_so(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "events.yaml"
    write_config(config, [hook(receiver)], name_prefix="shop.", retry={"max_attempts": 1})
    with eventisc.create_app(config_file=str(config)) as app:
        write_config(config, [hook(receiver, event_name="shop.e")], name_prefix="",
                     retry={"max_attempts": 3})  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="eventisc"):
            app.reload()
        assert "['retry'] changed; restart to apply" in caplog.text
        assert app.name_prefix == ""
        assert app.trigger("shop.e", {}) == 1


def test_deliveries_queued_before_a_reload_finish_on_the_old_listener(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = tmp_path / "events.yaml"
    write_config(config, [hook(receiver, "hook")], delivery="background")
    receiver.script.extend(Response(delay=0.2) for _ in range(3))
    with eventisc.create_app(config_file=str(config)) as app:
        for n in range(3):
            app.trigger("e", {"n": n})
        write_config(config, [{**hook(receiver, "hook"), "url": f"{receiver.url}/hook/v2"}],
                     delivery="background")  # fmt: skip
        assert app.reload()["changed"] == ["hook"]
        app.trigger("e", {"n": 3})
        receiver.wait_for(4, timeout=10)
    bodies = {request.json["n"]: request.path for request in receiver.requests}
    assert bodies == {0: "/hook", 1: "/hook", 2: "/hook", 3: "/hook/v2"}


def test_an_app_built_without_a_file_needs_one_to_reload(receiver: Receiver) -> None:
    with eventisc.App(listeners=[hook(receiver)]) as app:
        with pytest.raises(ConfigError, match="not built from a file"):
            app.reload()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")
def test_sighup_makes_a_running_relay_load_its_config_again(
    tmp_path: Path, receiver: Receiver, postgres_url: str, outbox_table: str
) -> None:
    """The relay delivers what was rendered when the row was written (url, body, headers:),
    with the listener's delivery settings of its config now (here a header of
    requests_kwargs, applied at delivery)."""
    config = tmp_path / "events.yaml"
    outbox = {"url": postgres_url, "table": outbox_table, "poll": 0.2}

    def version(tag: str) -> list[dict[str, Any]]:
        return [{**hook(receiver), "requests_kwargs": {"headers": {"X-Version": tag}}}]

    write_config(config, version("v1"), delivery="outbox", outbox=outbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTISC_")}
    relay = subprocess.Popen(
        [sys.executable, "-m", "eventisc", "-v", "relay", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        with eventisc.create_app(config_file=str(config)) as app:
            write(postgres_url, app, [1])
            receiver.wait_for(1, timeout=10)
            write_config(config, version("v2"), delivery="outbox", outbox=outbox)
            relay.send_signal(signal.SIGHUP)
            time.sleep(1.0)  # the reload runs on its own thread
            write(postgres_url, app, [2])
            receiver.wait_for(2, timeout=10)
            config.write_text("listeners: [}")  # broken: the relay keeps what it has
            relay.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            write(postgres_url, app, [3])
            receiver.wait_for(3, timeout=10)
            wait_for(lambda: stored(postgres_url, outbox_table) == [])
    finally:
        relay.send_signal(signal.SIGTERM)
        _out, err = relay.communicate(timeout=30)
    assert relay.returncode == 0, err
    versions = [request.headers["X-Version"] for request in receiver.requests]
    assert versions == ["v1", "v2", "v2"], err
    assert "reload failed, config kept" in err
