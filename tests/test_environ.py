"""``${VAR}`` in configs: resolved once, when the config is loaded."""

from __future__ import annotations

import pytest

import eventisc
from eventisc import ConfigError
from eventisc.environ import expand

from .support import run_cli


def test_variables_defaults_and_literals():
    env = {"HOST": "hooks.internal", "EMPTY": ""}
    config = {
        "url": "https://${HOST}/a/${MISSING:-x}/${EMPTY:-e}/${EMPTY}",
        "list": ["$${HOST}", "$${not a variable", 3, None],
        "price": "Total: ${event_data['price']}",  # a $ before a template field stays
    }
    assert expand(config, "", env) == {
        "url": "https://hooks.internal/a/x/e/",
        "list": ["${HOST}", "${not a variable", 3, None],
        "price": "Total: ${event_data['price']}",
    }


def test_an_unset_variable_names_itself_the_path_and_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("EVENTISC_TEST_UNSET", raising=False)
    path = tmp_path / "events.yaml"
    path.write_text(
        "listeners:\n"
        "  - kind: http\n"
        "    event_name: e\n"
        '    url: "https://${EVENTISC_TEST_UNSET}/hook"\n'
    )
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(config_file=str(path))
    assert info.value.path == "listeners[0].url"
    assert info.value.source == str(path)
    assert "EVENTISC_TEST_UNSET is not set" in str(info.value)


def test_a_config_file_is_resolved_once_at_load(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("EVENTISC_TEST_HOOK", receiver.url + "/from-env")
    monkeypatch.setenv("EVENTISC_TEST_TOKEN", "t0ken")
    path = tmp_path / "events.yaml"
    path.write_text(
        "listeners:\n"
        "  - kind: http\n"
        "    event_name: e\n"
        '    url: "${EVENTISC_TEST_HOOK}"\n'
        '    headers: {X-Token: "${EVENTISC_TEST_TOKEN}", X-Tier: "${EVENTISC_TEST_TIER:-free}"}\n'
    )
    with eventisc.create_app(config_file=str(path)) as app:
        monkeypatch.setenv("EVENTISC_TEST_HOOK", "http://127.0.0.1:9/changed")  # read once
        assert app.trigger("e") == 1
    request = receiver.requests[0]
    assert request.path == "/from-env"
    assert request.headers["X-Token"] == "t0ken" and request.headers["X-Tier"] == "free"


def test_eventisc_check_reports_an_unset_variable(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text('listeners:\n  - {kind: http, event_name: e, url: "${EVENTISC_NOPE}"}\n')
    out = run_cli("check", str(path))
    assert out.returncode == 1
    assert "listeners[0].url: environment variable EVENTISC_NOPE is not set" in out.stderr
