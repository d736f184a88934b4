"""Secrets: values from the environment and credential fields never shown (logs, errors,
dry-run, the command line, reprs, stats) nor stored (spool and outbox rows keep references,
and the config's values are put back at delivery), against a real receiver and PostgreSQL."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

import eventisc
from eventisc import DeliveryError
from eventisc._spool_codec import decode_payload, encode_payload
from eventisc.secret_values import MIN_LENGTH, forget, lookup, redact, register, split
from eventisc.spool import Spool, SpoolItem

from .receiver import Receiver
from .support import run_cli

#: A token with what JSON escapes (a quote, a backslash) and non-ASCII text in it.
TOKEN = 'tok"en\\-s3cr\u00e9t-0123456789'
#: Plain enough to stand in a URL.
URL_TOKEN = "urltoken-4c1f9e2b"
LITERAL = "Basic c2VjcmV0OnBhc3N3b3Jk"


def config_file(tmp_path: Path, url: str, **top: Any) -> Path:
    """A YAML config whose listener takes its secrets from TOKEN and URL_TOKEN (and has a
    credential header written literally)."""
    listener = {
        "kind": "http",
        "name": "hook",
        "event_name": "user_created",
        "url": url + "?key=${URL_TOKEN}",
        "headers": {"Authorization": "Bearer ${TOKEN}", "X-Api-Key": LITERAL},
        "data": {"token": "${TOKEN}", "user": "{event_data[user]}"},
    }
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump({"spool": str(tmp_path / "spool.db"), **top,
                                    "listeners": [listener]}))  # fmt: skip
    return path


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"TOKEN": TOKEN, "URL_TOKEN": URL_TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def forms(value: str) -> list[str]:
    """The ways a value can be written in stored text: as is, JSON-escaped (once, twice)."""
    once = json.dumps(value, ensure_ascii=False)[1:-1]
    return [value, once, json.dumps(once, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1], "c2VjcmV0OnBhc3N3b3Jk"]  # fmt: skip


def assert_hidden(text: str) -> None:
    for secret in (TOKEN, URL_TOKEN, LITERAL):
        for form in forms(secret):
            assert form not in text, f"{form!r} shown in {text[:2000]!r}"


def assert_sent_with_secrets(request: Any) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Api-Key"] == LITERAL
    assert request.query == {"key": [URL_TOKEN]}
    assert request.json == {"token": TOKEN, "user": "ada"}


def spool_one(config: Path) -> None:
    """Keep the config's notification of user_created {"user": "ada"} in its spool."""
    with eventisc.create_app(config_file=str(config)) as app:
        (listener,) = app.listeners
        spool = app._deliverer.spool
        assert spool is not None
        spool.add_many([SpoolItem(listener.render("user_created", {"user": "ada"}))])


# -- stored rows ---------------------------------------------------------------------------------


def test_spool_rows_keep_references_and_a_replay_sends_the_secrets(
    tmp_path: Path, receiver: Receiver, secrets_env: dict[str, str]
) -> None:
    config = config_file(tmp_path, receiver.url)
    spool_one(config)
    with sqlite3.connect(tmp_path / "spool.db") as db:
        stored = "\n".join(str(row) for row in db.execute("SELECT * FROM entries"))
    assert "env:TOKEN" in stored and "hook:headers.X-Api-Key" in stored
    assert_hidden(stored)
    shown = run_cli("spool", "list", str(config), env=secrets_env)
    assert shown.returncode == 0, shown.stderr
    assert_hidden(shown.stdout + shown.stderr)
    replayed = run_cli("spool", "replay", str(config), env=secrets_env)
    assert replayed.returncode == 0, replayed.stderr
    assert_hidden(replayed.stdout + replayed.stderr)
    (request,) = receiver.requests
    assert_sent_with_secrets(request)
    assert Spool(str(tmp_path / "spool.db")).count() == 0


def test_a_rotated_secret_is_sent_with_its_value_at_delivery(
    tmp_path: Path, receiver: Receiver, secrets_env: dict[str, str]
) -> None:
    config = config_file(tmp_path, receiver.url)
    spool_one(config)
    rotated = {**secrets_env, "TOKEN": "rotated-token-9876"}
    replayed = run_cli("spool", "replay", str(config), env=rotated)
    assert replayed.returncode == 0, replayed.stderr
    (request,) = receiver.requests
    assert request.headers["Authorization"] == "Bearer rotated-token-9876"
    assert request.json["token"] == "rotated-token-9876"


def test_a_row_needing_a_secret_the_config_lacks_is_set_aside_and_says_which(
    tmp_path: Path, receiver: Receiver, secrets_env: dict[str, str]
) -> None:
    config = config_file(tmp_path, receiver.url)
    spool_one(config)
    forget()
    plain = yaml.safe_load(config.read_text())
    plain["listeners"][0]["headers"] = {}
    plain["listeners"][0]["data"] = {"user": "{event_data[user]}"}
    config.write_text(yaml.safe_dump(plain))
    listed = run_cli("spool", "list", str(config), env=secrets_env)
    assert "1 unreadable" in listed.stdout, listed.stderr
    shown = run_cli("spool", "show", str(config), "1", env=secrets_env)
    unreadable = json.loads(shown.stdout)["unreadable"]
    assert "which the loaded config does not define" in unreadable, unreadable
    assert "${TOKEN}" in unreadable or "'hook:headers." in unreadable
    replayed = run_cli("spool", "replay", str(config), env=secrets_env)
    assert replayed.returncode != 0 or "unreadable" in replayed.stdout + replayed.stderr
    assert receiver.requests == []
    assert Spool(str(tmp_path / "spool.db")).count() == 1  # kept, not lost


def test_outbox_rows_keep_references_and_the_relay_sends_the_secrets(
    tmp_path: Path,
    receiver: Receiver,
    secrets_env: dict[str, str],
    postgres_url: str,
    outbox_table: str,
) -> None:
    import psycopg

    outbox = {"url": postgres_url, "table": outbox_table}
    config = config_file(tmp_path, receiver.url, delivery="outbox", outbox=outbox)
    with eventisc.create_app(config_file=str(config)) as app:
        app.trigger("user_created", {"user": "ada"})
        with psycopg.connect(postgres_url) as conn:
            (stored,) = conn.execute(f"SELECT payload::text FROM {outbox_table}").fetchone()
        assert "env:TOKEN" in stored
        assert_hidden(stored)
        assert app.run_relay(once=True, install_signals=False) == 0
    (request,) = receiver.requests
    assert_sent_with_secrets(request)


# -- what is shown -------------------------------------------------------------------------------


def test_errors_logs_reprs_and_stats_hide_the_secrets(
    tmp_path: Path, secrets_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    config = config_file(tmp_path, "http://127.0.0.1:9/hook", retry={"max_attempts": 1})
    caplog.set_level(logging.DEBUG, logger="eventisc")
    with eventisc.create_app(config_file=str(config), raise_errors=True) as app:
        with pytest.raises(DeliveryError) as info:
            app.trigger("user_created", {"user": "ada"})
        shown = [str(info.value), repr(info.value), repr(app), repr(app.listeners[0]),
                 app.listeners[0].describe(), json.dumps(app.stats(), default=str)]  # fmt: skip
    assert "127.0.0.1:9" in str(info.value)  # the error still says where
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert caplog.records and "Traceback" in logged + caplog.text
    assert_hidden("\n".join(shown) + logged + caplog.text)


def test_dry_run_check_and_routes_hide_the_secrets(
    tmp_path: Path, receiver: Receiver, secrets_env: dict[str, str]
) -> None:
    config = str(config_file(tmp_path, receiver.url))
    for args in (
        ["trigger", "--dry-run", "--data", '{"user": "ada"}', config, "user_created"],
        ["check", config],
        ["routes", config, "user_created"],
    ):
        result = run_cli(*args, env=secrets_env)
        assert result.returncode == 0, (args, result.stderr)
        assert "hook" in result.stdout + result.stderr
        assert_hidden(result.stdout + result.stderr)
    assert receiver.requests == []


def test_a_value_the_config_defaults_is_not_a_secret(tmp_path: Path, receiver: Receiver) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump({"listeners": [{"kind": "http", "event_name": "e",
        "url": receiver.url, "headers": {"X-Team": "${TEAM:-payments-team}"}}]}))  # fmt: skip
    with eventisc.create_app(config_file=str(path)) as app:
        assert "payments-team" in json.dumps(app.listeners[0].render("e", {}).payload)
    assert redact("payments-team") == "payments-team"


# -- the registry (pure logic) -------------------------------------------------------------------


def test_short_values_are_not_registered_and_longer_ones_are_found_in_every_form() -> None:
    register("env:PORT", "5672")
    assert redact("amqp://host:5672/") == "amqp://host:5672/"
    assert MIN_LENGTH > len("5672")
    register("env:TOKEN", 'a"b c/d-long')
    assert redact('x a"b c/d-long y') == "x *** y"
    assert redact('{"k":"a\\"b c/d-long"}') == '{"k":"***"}'
    assert redact("?t=a%22b%20c%2Fd-long") == "?t=***"
    assert redact("?t=a%22b+c%2Fd-long") == "?t=***"
    parts = split('{"k":"a\\"b c/d-long"}')
    assert parts == ['{"k":"', ["env:TOKEN|json"], '"}']
    assert lookup("env:TOKEN|json") == 'a\\"b c/d-long'
    with pytest.raises(KeyError, match=r"\$\{OTHER\}"):
        lookup("env:OTHER")


def test_event_data_shaped_like_a_stored_secret_stays_data() -> None:
    register("env:TOKEN", "the-secret-value")
    payload = {"body": {"$secret": [["env:TOKEN"]]}, "raw": b"x the-secret-value y"}
    text = encode_payload(payload)
    assert "the-secret-value" not in text
    assert decode_payload(text) == payload


def test_braces_in_a_value_from_the_environment_are_text_not_template_fields(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSWORD", "p{a}ss}{word")
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump({"listeners": [{"kind": "http", "event_name": "e",
        "url": receiver.url, "data": {"password": "${PASSWORD}", "n": "{event_data[n]}"},
        "headers": {"X-Mixed": "${PASSWORD}/{event_name}"}}]}))  # fmt: skip
    with eventisc.create_app(config_file=str(path)) as app:
        assert app.trigger("e", {"n": 3}) == 1
    (request,) = receiver.requests
    assert request.json == {"password": "p{a}ss}{word", "n": 3}
    assert request.headers["X-Mixed"] == "p{a}ss}{word/e"
