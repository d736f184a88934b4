"""The App and the module-level API: prefixes, custom kinds, failures, dry-run, threads."""

from __future__ import annotations

import json
import logging
import threading

import pytest

import eventisc
from eventisc import ConfigError, TriggerError

from .kinds import RecordingListener


def recording(event_name=None, **options):
    if event_name is not None:
        options["event_name"] = event_name
    return {"kind": "recording", **options}


def test_name_prefix_is_prepended_before_routing():
    app = eventisc.create_app("myapp.", [recording("myapp.user_created")])
    assert app.trigger("user_created", {"id": 1}) == 1
    assert app.trigger("myapp.user_created") == 0
    assert app.listeners[0].calls == [("myapp.user_created", {"id": 1})]


def test_event_data_defaults_to_an_empty_dict():
    app = eventisc.create_app(listeners=[recording("e")])
    app.trigger("e")
    assert app.listeners[0].calls == [("e", {})]


def test_custom_kind_with_only_do_notify_and_listener_instances():
    listener = RecordingListener(event_name_regex="a.*", label="mine")
    app = eventisc.create_app(listeners=[listener, recording("abc")])
    assert app.listeners[0] is listener
    assert app.trigger("abc", {"x": 1}) == 2
    assert listener.calls == [("abc", {"x": 1})]


def test_event_isc_style_compiled_regex_as_event_name():
    import re

    listener = RecordingListener(re.compile("user_.*"))
    assert listener.event_name_regex.pattern == "user_.*"
    assert listener.notify("user_x", {}) is True
    assert listener.notify("other", {}) is False


def test_a_listener_that_declines_is_not_counted():
    app = eventisc.create_app(listeners=[{"kind": "declining", "event_name": "e"}, recording("e")])
    assert app.trigger("e") == 1


def test_one_failing_listener_never_stops_the_others(caplog):
    app = eventisc.create_app(
        listeners=[recording("e", label="bad", fail=True), recording("e", label="good")]
    )
    with caplog.at_level(logging.ERROR, logger="eventisc"):
        assert app.trigger("e", {"n": 1}) == 1
    assert app.listeners[1].calls == [("e", {"n": 1})]
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.name.partition(".")[0] == "eventisc"  # the eventisc logger, or one below it
    assert "bad is broken" in caplog.text
    assert record.exc_info is not None  # logged with its traceback
    assert record.listener == "recording:e" and record.event_name == "e"


def test_raise_errors_raises_one_error_listing_every_failure_after_all_ran():
    app = eventisc.create_app(
        listeners=[
            recording("e", label="one", fail=True),
            recording("e", label="ok"),
            recording("e", label="two", fail=True, name="second"),
        ],
        raise_errors=True,
    )
    with pytest.raises(TriggerError) as info:
        app.trigger("e")
    err = info.value
    assert isinstance(err, eventisc.DeliveryError)
    assert [name for name, _ in err.failures] == ["recording:e", "second"]
    assert err.notified == 1
    assert "one is broken" in str(err) and "two is broken" in str(err)
    assert app.listeners[1].calls == [("e", {})]


def test_raise_errors_from_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "raise_errors: true\nlisteners:\n- {kind: recording, event_name: e, fail: true}\n"
    )
    with pytest.raises(TriggerError):
        eventisc.create_app(config_file=str(path)).trigger("e")
    # A keyword wins over the file.
    assert eventisc.create_app(config_file=str(path), raise_errors=False).trigger("e") == 0


def test_dry_run_renders_logs_and_counts_without_delivering(monkeypatch, caplog):
    monkeypatch.setenv("EVENTISC_DRYRUN", "Yes")
    app = eventisc.create_app(listeners=[recording("e")])
    assert app.dry_run is True
    with caplog.at_level(logging.INFO, logger="eventisc"):
        assert app.trigger("e", {"secret": 1}) == 1
    assert app.listeners[0].calls == []
    assert "dry-run" in caplog.text and "recording:e" in caplog.text


@pytest.mark.parametrize("value", ["y", "YES", "true", "1", "True"])
def test_dry_run_values(monkeypatch, value):
    monkeypatch.setenv("EVENTISC_DRYRUN", value)
    assert eventisc.create_app().dry_run is True


@pytest.mark.parametrize("value", ["", "no", "0", "false"])
def test_dry_run_off_values(monkeypatch, value):
    monkeypatch.setenv("EVENTISC_DRYRUN", value)
    assert eventisc.create_app().dry_run is False


def test_concurrent_triggers_from_many_threads_all_arrive():
    app = eventisc.create_app(listeners=[recording("e"), recording(event_name_regex="e|f")])
    counts = []
    barrier = threading.Barrier(8)

    def work(n):
        barrier.wait()
        counts.append(sum(app.trigger("e", {"t": n, "i": i}) for i in range(500)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [1000] * 8
    for listener in app.listeners:
        assert sorted((d["t"], d["i"]) for _, d in listener.calls) == [
            (t, i) for t in range(8) for i in range(500)
        ]


def test_listener_names_are_generated_and_made_unique():
    app = eventisc.create_app(listeners=[recording("e"), recording("e"), recording("e", name="x")])
    assert [listener.name for listener in app.listeners] == ["recording:e", "recording:e#2", "x"]


def test_duplicate_explicit_names_are_a_config_error():
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[recording("e", name="x"), recording("f", name="x")])
    assert info.value.path == "listeners[1].name"


def test_add_listener_after_creation_updates_routing():
    app = eventisc.create_app()
    assert app.trigger("e") == 0
    app.add_listener(recording("e"))
    assert app.trigger("e") == 1


def test_close_and_context_manager():
    closed = []

    class Closing(RecordingListener):
        def close(self):
            closed.append(self.name)

    with eventisc.create_app(listeners=[Closing("e")]) as app:
        assert app.trigger("e") == 1
    assert closed == ["recording:e"]


def test_nothing_is_logged_on_the_root_logger(caplog):
    app = eventisc.create_app(listeners=[recording("e", fail=True)])
    with caplog.at_level(logging.DEBUG):
        app.trigger("e")
    assert caplog.records
    assert all(r.name.startswith("eventisc") for r in caplog.records)


# -- the default app -------------------------------------------------------------------------


def test_default_app_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"listeners": [recording("pre.e")]}))
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    monkeypatch.setenv("EVENTISC_NAME_PREFIX", "pre.")
    assert eventisc.trigger("e", {"a": 1}) == 1
    app = eventisc.get_current_app()
    assert app.name_prefix == "pre."
    assert app.listeners[0].calls == [("pre.e", {"a": 1})]
    assert eventisc.get_current_app() is app


def test_config_name_prefix_wins_over_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "events.yml"
    path.write_text("name_prefix: cfg.\nlisteners: []\n")
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    monkeypatch.setenv("EVENTISC_NAME_PREFIX", "env.")
    assert eventisc.get_current_app().name_prefix == "cfg."


def test_resetting_default_app_rebuilds_it_from_the_environment(tmp_path, monkeypatch):
    first = eventisc.get_current_app()
    assert first.listeners == []
    path = tmp_path / "events.yaml"
    path.write_text("listeners:\n- {kind: recording, event_name: e}\n")
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    assert eventisc.get_current_app() is first
    eventisc.default_app = None
    assert eventisc.trigger("e") == 1
    assert eventisc.get_current_app() is not first


def test_init_default_app_with_arguments_replaces_and_closes_the_previous():
    closed = []

    class Closing(RecordingListener):
        def close(self):
            closed.append(True)

    eventisc.init_default_app(listeners=[Closing("e")])
    app = eventisc.init_default_app("p.", [recording("p.e")])
    assert closed == [True]
    assert eventisc.get_current_app() is app
    assert eventisc.trigger("e") == 1


def test_init_default_app_uses_the_env_prefix_when_none_given(monkeypatch):
    monkeypatch.setenv("EVENTISC_NAME_PREFIX", "env.")
    app = eventisc.init_default_app(listeners=[recording("env.e")])
    assert app.name_prefix == "env."
    assert eventisc.trigger("e") == 1


def test_a_bad_default_config_raises_at_first_use(tmp_path, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text("listeners:\n- {kind: nope, event_name: e}\n")
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        eventisc.trigger("e")
    assert info.value.source == str(path)
    assert info.value.path == "listeners[0].kind"
