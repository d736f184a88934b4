"""The command line, run as users run it: python -m eventisc ..."""

from __future__ import annotations

import json
import re

import eventisc

from .faults import dead_url
from .receiver import Response
from .support import run_cli


def config(tmp_path, receiver_url, extra=""):
    path = tmp_path / "events.yaml"
    path.write_text(
        f"""\
name_prefix: myapp.
listeners:
  - kind: http
    name: welcome
    event_name: myapp.user_created
    url: {receiver_url}/welcome
    data:
      user_id: "{{event_data['user']['id']}}"
  - kind: http
    event_name_regex: "myapp[.].*_created"
    filter: {{kind: expr, expr: "event_data.get('vip', False)"}}
    url: {receiver_url}/vip
{extra}"""
    )
    return str(path)


def test_check_lists_listeners(tmp_path, receiver):
    result = run_cli("check", config(tmp_path, "http://user:secret@127.0.0.1:9"))
    assert result.returncode == 0, result.stderr
    assert "OK, 2 listener(s)" in result.stdout
    assert "welcome  [http]  name  myapp.user_created" in result.stdout
    assert "regex myapp[.].*_created" in result.stdout
    assert "secret" not in result.stdout


def test_check_uses_eventisc_config_by_default(tmp_path, receiver):
    path = config(tmp_path, receiver.url)
    result = run_cli("check", env={"EVENTISC_CONFIG": path})
    assert result.returncode == 0, result.stderr
    assert path in result.stdout


def test_check_fails_with_the_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("listeners:\n- {kind: http, event_name: e, url: 'http://x/{event_data[a'}\n")
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert f"{path}: listeners[0].url: template" in result.stderr
    assert "missing a closing `}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_without_any_config():
    result = run_cli("check")
    assert result.returncode == 1
    assert "EVENTISC_CONFIG" in result.stderr


def test_routes(tmp_path, receiver):
    path = config(tmp_path, receiver.url)
    result = run_cli("routes", path, "user_created")
    assert result.returncode == 0
    assert "'myapp.user_created' reaches 2 listener(s)" in result.stdout
    assert "if its filter keeps the event" in result.stdout
    result = run_cli("routes", path, "order_paid")
    assert "no listener hears 'myapp.order_paid'" in result.stdout


def test_trigger_delivers_and_prints_each_outcome(tmp_path, receiver):
    path = config(tmp_path, receiver.url)
    result = run_cli("trigger", path, "user_created", "--data", json.dumps({"user": {"id": 7}}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "welcome [http]" in result.stdout
    assert "delivered" in result.stdout
    assert "skipped: the filter rejected the event" in result.stdout
    (request,) = receiver.wait_for(1)
    assert request.path == "/welcome"
    assert request.json == {"user_id": 7}


def test_trigger_dry_run_sends_nothing(tmp_path, receiver):
    path = config(tmp_path, receiver.url)
    data = json.dumps({"user": {"id": 7}, "vip": True})
    result = run_cli("trigger", path, "user_created", "--data", data, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("not sent (dry-run)") == 2
    assert "/welcome" in result.stdout
    assert receiver.requests == []


def test_trigger_exits_1_when_a_delivery_fails(tmp_path, receiver):
    receiver.respond(Response(status=500, body=b"boom"))
    path = config(tmp_path, receiver.url)
    result = run_cli("trigger", path, "user_created", "--data", '{"user": {"id": 1}}')
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "500" in result.stdout


def test_trigger_rejects_bad_json_data(tmp_path, receiver):
    result = run_cli("trigger", config(tmp_path, receiver.url), "x", "--data", "{nope")
    assert result.returncode == 2
    assert "--data is not valid JSON" in result.stderr


def test_schema_prints_json_schema():
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "eventisc configuration"


def test_usage_error_exits_2():
    assert run_cli("frobnicate").returncode == 2


def test_demo_with_rabbitmq_and_celery(broker):
    result = run_cli("demo", "--amqp-url", broker.url, timeout=120)
    forget_demo_names(broker, result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP POST /send-welcome/?source=shop.user_created" in result.stdout
    assert "HTTP PUT /orders/1001" in result.stdout
    assert result.stdout.count("RabbitMQ eventisc-demo-audit") == 3
    assert "Celery task shop.handle_order" in result.stdout
    assert "Every expected notification arrived." in result.stdout
    # Each trigger names every listener it notified, and the one whose filter dropped it.
    assert "-> 2 notified   # welcome-email, audit-log\n" in result.stdout
    assert "-> 3 notified   # big-orders, audit-log, order-task\n" in result.stdout
    assert "-> 2 notified   # audit-log, order-task; big-orders: filtered out\n" in result.stdout


def forget_demo_names(broker, stdout):
    """The demo's queue names in its output; the broker fixture deletes them (queues and
    exchanges) after the test."""
    names = set(re.findall(r"eventisc-demo-(?:audit|tasks)-[0-9-]+", stdout))
    broker.queues += names
    broker.exchanges += names
    return names


def test_demo_leaves_nothing_on_the_broker(broker):
    result = run_cli("demo", "--amqp-url", broker.url, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    names = forget_demo_names(broker, result.stdout)
    assert len(names) == 2, result.stdout
    left = [n for n in sorted(names) if broker.exists(n) or broker.exchange_exists(n)]
    assert left == [], f"the demo left {left} on RabbitMQ"


def test_demo_without_a_broker_says_so():
    result = run_cli("demo", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2F")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RabbitMQ not reachable at 127.0.0.1:1" in result.stdout
    assert "skipping the rabbit and celery listeners" in result.stdout
    assert "Every expected notification arrived." in result.stdout


def test_dry_run_output_and_log_mask_passwords(tmp_path, receiver, caplog):
    # Given a listener whose URL carries a password and whose headers carry a token,
    url = receiver.url.replace("http://", "http://user:s3cret@") + "/hook"
    path = tmp_path / "c.yaml"
    path.write_text(
        f"listeners:\n  - kind: http\n    event_name: e\n    url: {url}\n"
        "    headers: {Authorization: 'Bearer t0ken', X-Trace: keep}\n"
    )
    # when the command line shows what it would send,
    result = run_cli("trigger", str(path), "e", "--dry-run")
    assert result.returncode == 0, result.stderr
    # then the password and the token are masked, and the rest is shown;
    assert "s3cret" not in result.stdout and "t0ken" not in result.stdout
    assert "user:***@127.0.0.1" in result.stdout and '"X-Trace": "keep"' in result.stdout
    # the dry-run log of an app masks the same way.
    app = eventisc.create_app(config_file=str(path), dry_run=True)
    with app, caplog.at_level("INFO", "eventisc"):
        assert app.trigger("e") == 1
    assert "would send" in caplog.text
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text
    assert "user:***@" in caplog.text
    assert receiver.requests == []


def test_routes_says_when_the_name_prefix_was_given_twice(tmp_path, receiver):
    path = config(tmp_path, receiver.url)
    result = run_cli("routes", path, "myapp.user_created")
    assert result.returncode == 0, result.stderr
    # The regex listener hears the doubled name too; the hint says what was meant.
    assert "'myapp.myapp.user_created' reaches 1 listener(s)" in result.stdout
    assert (
        "note: the name_prefix 'myapp.' is added to the name you give, so it is there twice; "
        "give 'user_created' instead (it reaches 2 listener(s))"
    ) in result.stdout
    result = run_cli("routes", path, "myapp.order_paid")
    assert "no listener hears 'myapp.myapp.order_paid'\nnote: the name_prefix" in result.stdout
    assert "give 'order_paid' instead (it reaches 0 listener(s))" in result.stdout
    assert "note:" not in run_cli("routes", path, "user_created").stdout


def test_trigger_with_the_name_prefix_given_twice_says_so_too(tmp_path, receiver):
    result = run_cli("trigger", config(tmp_path, receiver.url), "myapp.order_paid")
    assert result.returncode == 0, result.stderr
    assert "no listener hears 'myapp.myapp.order_paid'" in result.stdout
    assert "give 'order_paid' instead" in result.stdout
    assert receiver.requests == []


def test_a_template_error_in_a_dry_run_is_told_once(tmp_path, receiver):
    # Given data without the user the welcome listener's template needs,
    path = config(tmp_path, receiver.url)
    result = run_cli("trigger", path, "user_created", "--dry-run")
    # the outcome says so, once, and nothing else repeats it on stderr.
    assert result.returncode == 1
    assert "FAILED: TemplateError: listener 'welcome', template" in result.stdout
    assert "no key 'user'" in result.stdout
    assert result.stderr == ""
    # With --verbose the log's record comes too, with its traceback.
    result = run_cli("--verbose", "trigger", path, "user_created", "--dry-run")
    assert "listener 'welcome' failed for event 'myapp.user_created'" in result.stderr
    assert "Traceback" in result.stderr


def test_trigger_names_the_spool_entry_that_keeps_a_failure(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(
        f"spool: {{path: {tmp_path / 'spool.db'}}}\n"
        f"listeners:\n  - {{kind: http, name: crm, event_name: e, url: '{dead_url()}'}}\n"
    )
    result = run_cli("trigger", str(path), "e")
    assert result.returncode == 1
    assert re.search(r"FAILED, kept in the spool as #\d+: ConnectError", result.stdout)
    assert result.stderr == ""
