"""eventisc.testing.capture and the pytest plugin: events are recorded, nothing is sent."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from unittest.mock import ANY

import pytest

import eventisc
from eventisc import TriggerError
from eventisc.app import Interceptor
from eventisc.spool import Spool
from eventisc.testing import capture

from .kinds import RecordingListener
from .receiver import Receiver

pytest_plugins = ["pytester"]


class Tripwire:
    """A TCP port that listens and never answers: any connection attempt is counted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        # The kernel completes the TCP handshake before accept(): pending ones are attempts.
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    t = Tripwire()
    yield t
    t.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound by nobody listening: connecting is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def http(receiver: Receiver, name: str = "crm", **options):
    """An http listener config sending ``{"id": ...}`` to ``receiver``/<name>."""
    if "event_name_regex" not in options:
        options.setdefault("event_name", "shop.user_created")
    return {
        "kind": "http",
        "name": name,
        "url": f"{receiver.url}/{name}",
        "data": {"id": "{event_data[id]}"},
        **options,
    }


def body(notification: eventisc.Notification):
    return json.loads(notification.payload["body"])


# -- what is captured ---------------------------------------------------------------------------


def test_capture_records_events_and_rendered_notifications_and_sends_nothing(receiver):
    app = eventisc.create_app(
        "shop.",
        [http(receiver), http(receiver, "all", event_name_regex="shop[.]")],
    )
    with capture(app) as events:
        assert app.trigger("user_created", {"id": 7}) == 2
        assert app.trigger("order_paid", {"id": 3}) == 1
    assert receiver.requests == []
    assert events.names() == ["shop.user_created", "shop.order_paid"]
    assert [e.data for e in events] == [{"id": 7}, {"id": 3}]
    assert events[0].listeners == ["crm", "all"] and events[1].listeners == ["all"]
    assert [body(n) for n in events.for_listener("all")] == [{"id": 7}, {"id": 3}]
    [crm] = events.for_listener("crm")
    assert crm.kind == "http" and crm.event_name == "shop.user_created"
    assert crm.payload["url"] == f"{receiver.url}/crm" and crm.payload["method"] == "POST"
    assert [n.listener for n in events.notifications] == ["crm", "all", "all"]
    # Control: the same app, outside the block, does deliver.
    assert app.trigger("user_created", {"id": 8}) == 2
    assert sorted(r.path for r in receiver.wait_for(2)) == ["/all", "/crm"]


def test_events_no_listener_hears_are_recorded_and_the_list_can_be_cleared():
    app = eventisc.create_app()
    with capture(app) as events:
        assert app.trigger("nobody_listens") == 0
        app.trigger("second", {"n": 2})
        assert len(events) == 2
        assert [e.name for e in events] == ["nobody_listens", "second"]
        assert events[0].data == {} and events[0].notifications == []
        assert [e.name for e in events[1:]] == ["second"]
        events.clear()
        assert len(events) == 0 and events.names() == []
        app.trigger("third")
    assert events.names() == ["third"]


def test_dispatch_reports_captured_listeners_as_skipped(receiver):
    app = eventisc.create_app("shop.", [http(receiver)])
    with capture(app) as events:
        report = app.dispatch("user_created", {"id": 7})
    delivery = report["crm"]
    assert (delivery.status, delivery.detail, delivery.error) == ("skipped", "captured", None)
    assert delivery.notification == events.for_listener("crm")[0]
    assert receiver.requests == []


def test_rabbit_and_celery_listeners_contact_nothing_and_nothing_fails(closed_port, tripwire):
    pytest.importorskip("pika")
    pytest.importorskip("celery")
    app = eventisc.create_app(
        listeners=[
            {
                "kind": "rabbit",
                "name": "closed",
                "event_name": "paid",
                "url": f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F",
                "publish_kwargs": {"routing_key": "{event_name}"},
                "timeout": 1,
            },
            {
                "kind": "rabbit",
                "name": "tripwire",
                "event_name": "paid",
                "url": f"amqp://guest:guest@127.0.0.1:{tripwire.port}/%2F",
                "publish_kwargs": {"routing_key": "q"},
                "timeout": 1,
            },
            {
                "kind": "celery",
                "name": "task",
                "event_name": "paid",
                "task_name": "handle_paid",
                "broker_url": f"amqp://guest:guest@127.0.0.1:{tripwire.port}//",
                "timeout": 1,
            },
        ],
        raise_errors=True,
    )
    with capture(app) as events:
        assert app.trigger("paid", {"amount": 10}) == 3
        report = app.dispatch("paid", {"amount": 11})
    assert [(d.name, d.status, d.detail) for d in report] == [
        ("closed", "skipped", "captured"),
        ("tripwire", "skipped", "captured"),
        ("task", "skipped", "captured"),
    ]
    assert tripwire.connections() == 0
    [message, _] = events.for_listener("closed")
    assert message.payload["routing_key"] == "paid" and json.loads(message.payload["body"]) == {
        "amount": 10
    }
    assert events.for_listener("task")[1].payload["task_name"] == "handle_paid"
    # Control: outside the block the closed port is really tried, and fails.
    with pytest.raises(eventisc.ConnectError, match=str(closed_port)):
        app.listeners[0].notify("paid", {"amount": 12})
    app.close()


def test_background_delivery_queues_and_spools_nothing(receiver, tmp_path):
    spool_path = tmp_path / "spool.db"
    app = eventisc.create_app(
        "shop.",
        [http(receiver)],
        delivery="background",
        durable=True,
        spool={"path": str(spool_path)},
    )
    try:
        with capture(app) as events:
            report = app.dispatch("user_created", {"id": 7})
            assert app.trigger("user_created", {"id": 8}) == 1
        assert report.done and report["crm"].detail == "captured"
        assert [body(n) for n in events.notifications] == [{"id": 7}, {"id": 8}]
        assert Spool(spool_path).count() == 0  # durable mode writes before queueing: not here
        assert app.flush(timeout=5)
        assert receiver.requests == []
        # Control: outside the block the same app delivers in the background.
        app.trigger("user_created", {"id": 9})
        assert app.flush(timeout=5)
        assert [r.json for r in receiver.requests] == [{"id": 9}]
    finally:
        app.close()


def test_a_custom_kind_with_only_do_notify_is_not_called():
    listener = RecordingListener("e")
    app = eventisc.create_app(listeners=[listener])
    with capture(app) as events:
        assert app.trigger("e", {"x": 1}) == 1
    assert listener.calls == []
    assert events.notifications[0].payload == {"event_data": {"x": 1}}


def test_capture_wins_over_dry_run(caplog, receiver):
    app = eventisc.create_app("shop.", [http(receiver)], dry_run=True)
    with caplog.at_level(logging.INFO, logger="eventisc"), capture(app) as events:
        assert app.dispatch("user_created", {"id": 1})["crm"].detail == "captured"
    assert len(events.notifications) == 1
    assert "dry-run" not in caplog.text


# -- the default app -----------------------------------------------------------------------------


def test_capture_defaults_to_the_default_app_built_from_the_environment(
    receiver, tmp_path, monkeypatch
):
    config = tmp_path / "events.json"
    config.write_text(json.dumps({"name_prefix": "shop.", "listeners": [http(receiver)]}))
    monkeypatch.setenv("EVENTISC_CONFIG", str(config))
    with capture() as events:
        assert eventisc.trigger("user_created", {"id": 7}) == 1
    assert events.app is eventisc.default_app
    events.assert_triggered("user_created", id=7)
    assert receiver.requests == []


# -- assertions -----------------------------------------------------------------------------


@pytest.fixture
def shop_events(receiver):
    app = eventisc.create_app("shop.", [http(receiver)])
    with capture(app) as events:
        app.trigger("user_created", {"id": 7, "email": "ann@example.com", "name": "Ann"})
        app.trigger("order_paid", {"amount": 10})
        app.trigger("ping", ["not", "a", "mapping"])
        yield events


def test_assert_triggered_takes_full_or_prefixless_names_and_a_data_subset(shop_events):
    event = shop_events.assert_triggered("shop.user_created")
    assert event is shop_events[0] and event.short_name == "user_created"
    shop_events.assert_triggered("user_created", id=7)
    shop_events.assert_triggered("user_created", id=7, email=ANY)
    shop_events.assert_triggered("user_created", name="Ann")  # `name` is a data key too
    shop_events.require_listener = False  # no listener hears `ping`
    shop_events.assert_triggered("ping")
    assert shop_events.find("user_created", id=8) == []
    with pytest.raises(AssertionError):
        shop_events.assert_triggered("ping", n=1)  # data that is not a mapping


def test_assert_triggered_failure_lists_what_was_triggered(shop_events):
    with pytest.raises(AssertionError) as info:
        shop_events.assert_triggered("user_created", id=8, phone="555")
    assert str(info.value) == textwrap.dedent(
        """\
        expected event 'user_created' with data containing {'id': 8, 'phone': '555'}; \
triggered: 3 events
          [0] shop.user_created {'id': 7, 'email': 'ann@example.com', 'name': 'Ann'} \
(notified: crm)
              'id': expected 8, got 7; 'phone' is missing
          [1] shop.order_paid {'amount': 10}
          [2] shop.ping ['not', 'a', 'mapping']"""
    )


def test_assert_triggered_failure_suggests_a_close_name(shop_events):
    with pytest.raises(AssertionError, match=r"no event is called 'user_create' \(did you mean"):
        shop_events.assert_triggered("user_create")


def test_assert_triggered_when_nothing_was_triggered_names_the_app():
    app = eventisc.create_app("shop.")
    with capture(app) as events, pytest.raises(AssertionError) as info:
        events.assert_triggered("user_created", id=1)
    assert str(info.value) == (
        "expected event 'user_created' with data containing {'id': 1}, "
        "but no event was triggered on <App prefix='shop.' listeners=0>"
    )


def test_long_data_is_cut_in_messages():
    app = eventisc.create_app()
    with capture(app) as events:
        app.trigger("big", {"blob": "x" * 1000})
    with pytest.raises(AssertionError) as info:
        events.assert_triggered("small")
    line = str(info.value).splitlines()[1]
    assert len(line) < 200 and line.endswith("...")


def test_a_long_history_is_cut_in_messages():
    app = eventisc.create_app()
    with capture(app) as events:
        for i in range(100):
            app.trigger("tick", {"i": i})
    with pytest.raises(AssertionError) as info:
        events.assert_triggered("tick", i=100)
    lines = str(info.value).splitlines()
    assert lines[-1] == "  ... and 70 more (events.names() has all)"
    assert lines[1:3] == ["  [0] tick {'i': 0}", "      'i': expected 100, got 0"]


def test_assert_not_triggered(shop_events):
    shop_events.assert_not_triggered("user_deleted")
    shop_events.assert_not_triggered("user_created", id=8)
    with pytest.raises(AssertionError) as info:
        shop_events.assert_not_triggered("order_paid")
    assert str(info.value) == (
        "expected no event 'order_paid'; it was triggered once:\n  shop.order_paid {'amount': 10}"
    )


def test_for_listener_rejects_an_unknown_listener_name(shop_events):
    with pytest.raises(ValueError, match=r"no listener named 'crn' \(did you mean 'crm'\?\)"):
        shop_events.for_listener("crn")


# -- errors inside a capture ----------------------------------------------------------------


def test_template_errors_are_raised_as_in_a_normal_trigger(receiver):
    bad = http(receiver, "bad", data={"email": "{event_data[email]}"})
    app = eventisc.create_app("shop.", [http(receiver), bad], raise_errors=True)
    with capture(app) as events, pytest.raises(TriggerError) as info:
        app.trigger("user_created", {"id": 7})
    assert [name for name, _ in info.value.failures] == ["bad"]
    assert isinstance(info.value.failures[0][1], eventisc.TemplateError)
    assert info.value.notified == 1
    # The event is recorded; only the listener that rendered has a notification.
    assert events.names() == ["shop.user_created"] and events[0].listeners == ["crm"]
    assert receiver.requests == []


def test_template_errors_are_logged_without_raise_errors(receiver, caplog):
    bad = http(receiver, "bad", data={"email": "{event_data[email]}"})
    app = eventisc.create_app("shop.", [http(receiver), bad])
    with caplog.at_level(logging.ERROR, logger="eventisc"), capture(app) as events:
        assert app.trigger("user_created", {"id": 7}) == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.listener == "bad"
    assert events[0].listeners == ["crm"]


# -- nesting, several apps, threads -------------------------------------------------------


def test_nested_captures_both_record_and_the_hooks_are_restored(receiver):
    app = eventisc.create_app("shop.", [http(receiver)])
    with capture(app) as outer:
        app.trigger("user_created", {"id": 1})
        with capture(app) as inner:
            app.trigger("user_created", {"id": 2})
        app.trigger("user_created", {"id": 3})
    assert [e.data["id"] for e in outer] == [1, 2, 3]
    assert [e.data["id"] for e in inner] == [2]
    assert [body(n) for n in inner.notifications] == [{"id": 2}]
    assert app._interceptor is None  # the app delivers again
    assert receiver.requests == []
    app.trigger("user_created", {"id": 4})
    assert [r.json for r in receiver.wait_for(1)] == [{"id": 4}]


def test_captures_ending_out_of_order_keep_capturing(receiver):
    # Given two captures of one app, when the first one to start ends first,
    # then the other still captures: nothing is delivered.
    app = eventisc.create_app("shop.", [http(receiver)])
    first, second = capture(app), capture(app)
    a = first.__enter__()
    b = second.__enter__()
    first.__exit__(None, None, None)
    app.trigger("user_created", {"id": 1})
    second.__exit__(None, None, None)
    assert len(a) == 0 and b.names() == ["shop.user_created"]
    assert receiver.requests == []


def test_an_interceptor_already_on_the_app_is_called_and_put_back():
    app = eventisc.create_app(listeners=[RecordingListener("e")])
    seen: list[tuple[str, str]] = []

    class Theirs(Interceptor):
        def observe(self, name, data):
            seen.append(("observe", name))

        def capture(self, listener, notification):
            seen.append(("capture", notification.listener))

    theirs = Theirs()
    app.intercept(theirs)
    with capture(app) as events:
        app.trigger("e")
    assert seen == [("observe", "e"), ("capture", "recording:e")] and len(events) == 1
    assert app._interceptor is theirs
    assert app.intercept(None) is theirs
    app.trigger("e")
    assert app.listeners[0].calls == [("e", {})]  # delivered again, not captured


def test_captures_of_several_apps_are_independent(receiver):
    shop = eventisc.create_app("shop.", [http(receiver)])
    billing = eventisc.create_app("billing.", [http(receiver, event_name="billing.paid")])
    with capture(shop) as shop_events, capture(billing) as billing_events:
        shop.trigger("user_created", {"id": 1})
        billing.trigger("paid", {"id": 2})
    assert shop_events.names() == ["shop.user_created"]
    assert billing_events.names() == ["billing.paid"]
    with capture(shop) as only_shop:
        billing.trigger("paid", {"id": 3})  # not captured: delivered
    assert len(only_shop) == 0
    assert [r.json for r in receiver.wait_for(1)] == [{"id": 3}]


def test_triggers_from_many_threads_are_all_recorded_with_their_own_notifications(receiver):
    app = eventisc.create_app(
        "shop.",
        [http(receiver), http(receiver, "b", data={"id": "{event_data[id]}", "copy": True})],
    )
    per_thread, threads = 50, 8
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            app.trigger("user_created", {"id": t * 1000 + i})

    with capture(app) as events:
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert len(events) == threads * per_thread
    assert len({e.data["id"] for e in events}) == threads * per_thread
    for event in events:
        assert [body(n)["id"] for n in event.notifications] == [event.data["id"]] * 2
    assert receiver.requests == []


def test_importing_the_helpers_imports_no_driver():
    code = (
        "import sys, eventisc.testing, eventisc.pytest_plugin; "
        "print(sorted(m for m in ('requests', 'pika', 'celery', 'kombu') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the pytest plugin, used from a project ---------------------------------------------------

PROJECT_TESTS = """
import json
import os

import eventisc
from eventisc.testing import capture

default_apps = []


def test_signup_is_captured(eventisc_capture):
    assert eventisc.trigger("user_created", {"id": 7, "email": "ann@example.com"}) == 1
    assert eventisc.trigger("order_paid", {"id": 3, "amount": 10}) == 1
    eventisc_capture.assert_triggered("user_created", id=7)
    eventisc_capture.assert_triggered("shop.order_paid", amount=10)
    assert eventisc_capture.names() == ["shop.user_created", "shop.order_paid"]
    [request] = eventisc_capture.for_listener("crm")
    assert json.loads(request.payload["body"]) == {"id": 7, "email": "ann@example.com"}
    [message] = eventisc_capture.for_listener("audit")
    assert message.payload["routing_key"] == "shop.order_paid"


def test_the_default_app_was_reset():
    assert eventisc.default_app is None


def test_wrong_email(eventisc_capture):
    eventisc.trigger("user_created", {"id": 7, "email": "ann@example.com"})
    eventisc_capture.assert_triggered("user_created", email="bob@example.com")


class Probe(eventisc.Listener):
    kind = "probe"
    closed = []

    def _do_notify(self, event_name, event_data):
        raise AssertionError("a captured event was delivered")

    def close(self):
        Probe.closed.append(self.name)


def test_app_factory(eventisc_app):
    shop = eventisc_app(os.environ["EVENTISC_CONFIG"], name_prefix="other.")
    probe = eventisc_app(listeners=[Probe("ping", name="probe")])
    with capture(shop) as shop_events, capture(probe) as probe_events:
        assert probe.trigger("ping", {"n": 1}) == 1
    probe_events.assert_triggered("ping", n=1)
    assert len(shop_events) == 0 and shop.name_prefix == "other."
    assert Probe.closed == []


def test_factory_apps_were_closed():
    assert Probe.closed == ["probe"]


def test_replacing_the_default_app_warns(eventisc_capture):
    eventisc.default_app = None
    eventisc.get_current_app()


def test_control_without_capture_delivers():
    assert eventisc.trigger("user_created", {"id": 1, "email": "control@example.com"}) == 1
    default_apps.append(eventisc.default_app)


def test_an_existing_default_app_is_captured(eventisc_capture):
    assert eventisc_capture.app is default_apps[0]
    eventisc.trigger("user_created", {"id": 2, "email": "captured@example.com"})


def test_and_kept_afterwards():
    assert eventisc.default_app is default_apps[0]
"""


@pytest.fixture
def project(pytester, receiver, closed_port, monkeypatch):
    """A project whose default app sends to ``receiver`` (HTTP) and a closed AMQP port."""
    pytest.importorskip("pika")
    config = {
        "name_prefix": "shop.",
        "listeners": [
            {
                "kind": "http",
                "name": "crm",
                "event_name": "shop.user_created",
                "url": f"{receiver.url}/users",
                "data": {"id": "{event_data[id]}", "email": "{event_data[email]}"},
            },
            {
                "kind": "rabbit",
                "name": "audit",
                "event_name_regex": "shop[.]order_",
                "url": f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F",
                "publish_kwargs": {"routing_key": "{event_name}"},
                "timeout": 1,
            },
        ],
    }
    path = pytester.path / "events.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("EVENTISC_CONFIG", str(path))
    pytester.makepyfile(test_shop=PROJECT_TESTS)
    return pytester


def check_project_run(result: pytest.RunResult, receiver: Receiver) -> None:
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(["*test_shop.py::test_wrong_email FAILED*"])
    # The failure reads well: what was expected, what was triggered, what differs...
    errors = [line[1:].strip() for line in result.outlines if line.startswith("E ")]
    assert errors == [
        "AssertionError: expected event 'user_created' with data containing "
        "{'email': 'bob@example.com'}; triggered: 1 event",
        "[0] shop.user_created {'id': 7, 'email': 'ann@example.com'} (notified: crm)",
        "'email': expected 'bob@example.com', got 'ann@example.com'",
    ]
    # ...and points at the test's own line, not into eventisc.
    result.stdout.fnmatch_lines(["test_shop.py:*: AssertionError"])
    result.stdout.no_fnmatch_line("*eventisc/testing.py*")
    result.stdout.fnmatch_lines(["*UserWarning: eventisc.default_app was replaced during*"])
    # Only the control test, which does not capture, reached the receiver.
    assert [r.json["email"] for r in receiver.requests] == ["control@example.com"]


def test_plugin_fixtures_loaded_with_p(project, receiver):
    # -p no:eventisc: once the entry point is registered it would load the module twice.
    result = project.runpytest_subprocess(
        "-p", "no:eventisc", "-p", "eventisc.pytest_plugin", "-v", timeout=120
    )
    check_project_run(result, receiver)


def _entry_point() -> importlib.metadata.EntryPoint | None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    return next((ep for ep in entry_points if ep.name == "eventisc"), None)


@pytest.mark.skipif(_entry_point() is None, reason="the pytest11 entry point is not installed")
def test_plugin_fixtures_from_the_entry_point(project, receiver):
    entry_point = _entry_point()
    assert entry_point is not None and entry_point.value == "eventisc.pytest_plugin"
    result = project.runpytest_subprocess("-v", timeout=120)
    check_project_run(result, receiver)


# -- a service that builds the default app at import, before the test sets its config ---------

SERVICE = """
import eventisc

APP = eventisc.get_current_app()  # at import, as a service checking its config does


def signup(email):
    eventisc.trigger("user_created", {"email": email})


def audit():
    APP.trigger("audited")
"""

SERVICE_TESTS = """
import pytest

import eventisc
import shop_service


@pytest.fixture
def events_config(monkeypatch):
    monkeypatch.setenv("EVENTISC_CONFIG", "events.yaml")


def test_the_app_of_the_test_config_is_captured(events_config, eventisc_capture):
    shop_service.signup("ann@example.com")
    eventisc_capture.assert_triggered("user_created", email="ann@example.com")
    [request] = eventisc_capture.for_listener("crm-webhook")
    assert request.payload["url"] == "http://127.0.0.1:9/users"
    assert eventisc_capture.app is eventisc.default_app


def test_an_event_no_listener_hears_fails(eventisc_capture):
    shop_service.signup("bob@example.com")
    eventisc_capture.assert_triggered("user_created")


def test_an_app_kept_from_before_is_captured_too(events_config, eventisc_capture):
    shop_service.audit()
    assert len(eventisc_capture) == 0


def test_unless_asked_not_to(eventisc_capture):
    shop_service.signup("bob@example.com")
    eventisc_capture.require_listener = False
    eventisc_capture.assert_triggered("user_created")
"""


def test_the_fixture_captures_the_app_of_the_config_the_test_set(pytester):
    # Given a service module that builds the default app at import, with no config yet,
    pytester.makepyfile(shop_service=SERVICE, test_service=SERVICE_TESTS)
    (pytester.path / "events.yaml").write_text(
        "listeners:\n- kind: http\n  name: crm-webhook\n  event_name: user_created\n"
        "  url: http://127.0.0.1:9/users\n"
    )
    # when a test sets EVENTISC_CONFIG afterwards and uses the fixture,
    result = pytester.runpytest_subprocess(
        "-p", "no:eventisc", "-p", "eventisc.pytest_plugin", "-v", timeout=120
    )
    # then the app of that config is captured, and without a config the assertion says why.
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_an_event_no_listener_hears_fails FAILED*"])
    result.stdout.fnmatch_lines(
        ["*UserWarning: 1 event(s) (audited) were triggered on the default app built before*"]
    )
    result.stdout.fnmatch_lines(
        [
            "E * 'user_created' was triggered but no listener hears it; the app's listeners: none",
            "E * the app was built without a config: was EVENTISC_CONFIG set before the app "
            "was built?",
        ]
    )


def test_assert_triggered_names_the_listeners_when_none_hears_the_event(receiver):
    app = eventisc.create_app("shop.", [http(receiver)])
    with capture(app) as events:
        app.trigger("user_craeted", {"id": 7})
    with pytest.raises(AssertionError) as info:
        events.assert_triggered("user_craeted", id=7)
    assert str(info.value).splitlines()[:2] == [
        "'user_craeted' was triggered but no listener hears it; the app's listeners: "
        "crm (event shop.user_created)",
        "listeners match the full name, 'shop.user_craeted' (did you mean 'shop.user_created'?); "
        "the app's config: none (built from Python)",
    ]
    events.require_listener = False
    assert events.assert_triggered("user_craeted", id=7) is events[0]
