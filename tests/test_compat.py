"""event-isc's README config works unchanged, read through EVENTISC_CONFIG."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import eventisc

ROOT = Path(__file__).resolve().parent.parent

# The YAML of event-isc's README, verbatim but for the receiver's address.
EVENT_ISC_YAML = """\
name_prefix: myapp.
listeners:
- kind: http
  event_name: myapp.user_created
  url: {url}/send-welcome/
  requests_kwargs:
    auth: ["myuser", "password"]
  request_format: json
  data:
    user_id: "{{event_data['user'].id}}"
    email: "{{event_data['user'].email}}"
- kind: celery
  event_name_regex: myapp[.].*_created
  queue: foo_service
  task_name: foo_handle_created
  task_kwargs:
    event_name: {{event_name}}
    event_data: {{event_data}}
"""


class User:
    id = 42
    email = "ada@example.com"


def load(tmp_path, monkeypatch, url):
    path = tmp_path / "events.yaml"
    path.write_text(EVENT_ISC_YAML.format(url=url))
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    return eventisc.get_current_app()


def test_readme_config_routes_as_documented(tmp_path, monkeypatch, receiver, caplog):
    with caplog.at_level(logging.WARNING, logger="eventisc"):
        app = load(tmp_path, monkeypatch, receiver.url)
    # The unquoted {event_name} / {event_data} are read as templates, with a warning each.
    assert caplog.text.count("unquoted YAML") == 2
    assert [lis.kind for lis in app.routes("user_created")] == ["http", "celery"]
    assert [lis.kind for lis in app.routes("foo_created")] == ["celery"]
    celery = app.listeners[1]
    notification = celery.render("myapp.foo_created", {"foo": "bar"})
    assert notification.payload["task_name"] == "foo_handle_created"
    assert notification.payload["queue"] == "foo_service"
    assert notification.payload["kwargs"] == {
        "event_name": "myapp.foo_created",
        "event_data": {"foo": "bar"},
    }


def test_readme_http_listener_delivers(tmp_path, monkeypatch, receiver):
    app = load(tmp_path, monkeypatch, receiver.url)
    http = app.listeners[0]
    http.deliver(http.render("myapp.user_created", {"user": User()}))
    (request,) = receiver.wait_for(1)
    assert request.path == "/send-welcome/"
    assert request.json == {"user_id": 42, "email": "ada@example.com"}
    assert request.headers["Authorization"] == "Basic bXl1c2VyOnBhc3N3b3Jk"  # myuser:password


def test_readme_dry_run_counts_both_listeners(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("EVENTISC_DRYRUN", "1")
    load(tmp_path, monkeypatch, receiver.url)
    assert eventisc.trigger("user_created", {"user": User()}) == 2
    assert eventisc.trigger("foo_created", {"foo": "bar"}) == 1
    assert receiver.requests == []


def test_example_config_of_the_repository_is_valid():
    result = subprocess.run(
        [sys.executable, "-m", "eventisc", "check", str(ROOT / "examples" / "config.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "OK, 3 listener(s)" in result.stdout
