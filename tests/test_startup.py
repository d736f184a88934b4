"""The startup check: ``eventisc.check()`` and ``eventisc check`` report a bad config where a
service starts, and name ``EVENTISC_CONFIG`` when the file's name came from it."""

from __future__ import annotations

import pytest

import eventisc
from eventisc import ConfigError

from .support import run_cli

GOOD = "listeners:\n- {kind: http, event_name: user_created, url: 'http://127.0.0.1:9/'}\n"
TYPO = "listeners:\n- kind: http\n  event_name: user_created\n  urll: http://127.0.0.1:9/\n"


def test_check_builds_the_default_app_now_and_returns_it(tmp_path, monkeypatch):
    path = tmp_path / "events.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    app = eventisc.check()
    assert app is eventisc.default_app and len(app.listeners) == 1
    assert eventisc.check() is app  # built once


def test_check_raises_the_config_error_naming_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "events.yaml"
    path.write_text(TYPO)
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        eventisc.check()
    assert str(info.value).startswith(f"{path}: listeners[0].urll: unknown option 'urll'")
    assert str(info.value).endswith(f"(config from EVENTISC_CONFIG={path})")
    assert info.value.origin == f"EVENTISC_CONFIG={path}"
    assert info.value.path == "listeners[0].urll"
    assert eventisc.default_app is None


def test_a_missing_file_from_the_variable_names_it(tmp_path, monkeypatch):
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("EVENTISC_CONFIG", str(missing))
    with pytest.raises(ConfigError) as info:
        eventisc.init_default_app()
    assert str(info.value) == (
        f"{missing}: config file not found (config from EVENTISC_CONFIG={missing})"
    )


def test_a_config_given_in_python_does_not_name_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "events.yaml"
    path.write_text(TYPO)
    monkeypatch.setenv("EVENTISC_CONFIG", str(tmp_path / "other.yaml"))
    with pytest.raises(ConfigError) as info:
        eventisc.init_default_app(config_file=str(path))
    assert "EVENTISC_CONFIG" not in str(info.value) and info.value.origin is None


def test_check_without_a_config_is_an_error_unless_not_required():
    with pytest.raises(ConfigError, match="EVENTISC_CONFIG is not set"):
        eventisc.check()
    assert eventisc.default_app is None
    assert eventisc.check(required=False).listeners == []


def test_check_keeps_a_default_app_given_in_python():
    listener = {"kind": "http", "event_name": "e", "url": "http://127.0.0.1:9/"}
    app = eventisc.init_default_app(listeners=[listener])
    assert eventisc.check() is app


def test_the_command_checks_the_config_of_the_variable(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(GOOD)
    result = run_cli("check", env={"EVENTISC_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: OK, 1 listener(s)")

    path.write_text(TYPO)
    result = run_cli("check", env={"EVENTISC_CONFIG": str(path)})
    assert result.returncode == 1
    assert result.stderr.startswith(f"eventisc check: {path}: listeners[0].urll: unknown option")
    assert result.stderr.rstrip().endswith(f"(config from EVENTISC_CONFIG={path})")
    assert "Traceback" not in result.stderr


def test_the_command_given_a_path_does_not_name_the_variable(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(TYPO)
    result = run_cli("check", str(path), env={"EVENTISC_CONFIG": str(path)})
    assert result.returncode == 1 and "EVENTISC_CONFIG" not in result.stderr
