"""The ``python`` kind: functions as listeners, from YAML (``callable:``) or decorators, with
the routing, filters, retries, background delivery, metrics, capture, dry-run and stored
rows of every kind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import eventisc
import eventisc.testing
from eventisc import ConfigError, ConnectError, DeliveryError, DeliveryTimeout
from eventisc.listeners.python import PythonListener, forget_declared
from eventisc.listeners.python.errors import TRANSLATIONS, translate_error

#: What the functions below were called with: (function, event name, argument, thread name).
CALLS: list[tuple[str, str, Any, str]] = []


def record(event_name: str, data: Any) -> None:
    CALLS.append(("record", event_name, data, threading.current_thread().name))


def decline(event_name: str, data: Any) -> bool:
    CALLS.append(("decline", event_name, data, threading.current_thread().name))
    return False


def one_argument(event_name: str) -> None:  # cannot take the event data
    raise AssertionError("never called")


async def coroutine(event_name: str, data: Any) -> None:
    raise AssertionError("never called")


NOT_A_FUNCTION = 42


class Handlers:
    @staticmethod
    def on_event(event_name: str, data: Any) -> None:
        CALLS.append(("Handlers.on_event", event_name, data, threading.current_thread().name))


@pytest.fixture(autouse=True)
def _calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()
    forget_declared()


def python(callable: str, event_name: str = "user_created", **options: Any) -> dict[str, Any]:
    return {"kind": "python", "event_name": event_name, "callable": callable, **options}


HERE = __name__


def test_a_yaml_listener_calls_the_function_with_the_event_name_and_data(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text(
        "name_prefix: shop.\n"
        "listeners:\n"
        "  - kind: python\n"
        "    event_name: shop.user_created\n"
        f"    callable: {HERE}:record\n"
        "  - kind: python\n"
        "    event_name_regex: shop\\.user_\n"
        f"    callable: {HERE}:Handlers.on_event\n"
    )
    with eventisc.create_app(config_file=str(path)) as app:
        data = {"user": {"id": 7}}
        assert app.trigger("user_created", data) == 2
        assert app.trigger("user_deleted", {"id": 8}) == 1
    assert [call[:3] for call in CALLS] == [
        ("record", "shop.user_created", data),
        ("Handlers.on_event", "shop.user_created", data),
        ("Handlers.on_event", "shop.user_deleted", {"id": 8}),
    ]
    assert CALLS[0][2] is data  # the object given to trigger, not a copy
    assert CALLS[0][3] == threading.current_thread().name  # sync: in the caller's thread


def test_with_data_the_function_gets_the_rendered_payload():
    config = {"listeners": [python(f"{HERE}:record", data={"id": "{event_data[user].id}",
                                                           "event": "{event_name}"})]}  # fmt: skip

    class User:
        id = 42

    with eventisc.App.from_config(config) as app:
        app.trigger("user_created", {"user": User()})
    assert [call[:3] for call in CALLS] == [
        ("record", "user_created", {"id": 42, "event": "user_created"})
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.no_such_module:record", "cannot import 'tests.no_such_module'"),
        (f"{HERE}:missing", "has no attribute 'missing'"),
        (f"{HERE}:NOT_A_FUNCTION", "is a int, not a function"),
        (f"{HERE}:one_argument", "cannot be called as function(event_name, event_data)"),
        (f"{HERE}:coroutine", "is a coroutine function"),
        ("record", 'must name a function as "package.module:function"'),
    ],
)
def test_a_bad_callable_is_a_config_error_with_its_path_at_load(spec, message):
    config = {"listeners": [python(f"{HERE}:record"), python(spec)]}
    with pytest.raises(ConfigError) as caught:
        eventisc.App.from_config(config, "events.yaml")
    error = caught.value
    assert error.path == "listeners[1].callable"
    assert error.source == "events.yaml"
    assert message in error.message
    assert CALLS == []


def test_a_listener_without_callable_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        eventisc.App.from_config({"listeners": [{"kind": "python", "event_name": "e"}]})
    assert caught.value.path == "listeners[0]"
    assert "callable" in caught.value.message


def test_app_listener_decorator_routes_filters_and_names():
    app = eventisc.App()

    @app.listener(
        event_name_regex=r"order\.",
        filter={"kind": "expr", "expr": "event_data['total'] > 10"},
        name="big-orders",
    )
    def big_orders(event_name: str, data: Any) -> None:
        CALLS.append(("big_orders", event_name, data, ""))

    assert big_orders.__name__ == "big_orders"  # the function is returned unchanged
    with app:
        app.trigger("order.placed", {"total": 5})
        app.trigger("order.placed", {"total": 50})
        app.trigger("user.created", {"total": 500})
        stats = app.stats()["listeners"]["big-orders"]
    assert [call[1:3] for call in CALLS] == [("order.placed", {"total": 50})]
    assert (stats["matched"], stats["filtered"], stats["delivered"]) == (2, 1, 1)
    assert app.listeners[0].kind == "python"
    assert app.listeners[0].describe() == f"call {HERE}:test_app_listener_decorator_routes_" \
        "filters_and_names.<locals>.big_orders"  # fmt: skip


def test_module_listener_decorator_reaches_the_default_app_built_before_and_after():
    eventisc.init_default_app(listeners=[])

    @eventisc.listener("user_created")
    def on_user(event_name: str, data: Any) -> None:
        CALLS.append(("on_user", event_name, data, ""))

    assert eventisc.trigger("user_created", {"n": 1}) == 1
    eventisc.init_default_app(listeners=[])  # a new default app gets the function too
    assert eventisc.trigger("user_created", {"n": 2}) == 1
    assert [call[2] for call in CALLS] == [{"n": 1}, {"n": 2}]


def test_module_listener_decorator_with_bad_options_raises_and_is_not_kept():
    with pytest.raises(ConfigError):

        @eventisc.listener("e", delivery="never")
        def broken(event_name: str, data: Any) -> None:
            pass

    app = eventisc.init_default_app(listeners=[])
    assert app.listeners == []


def test_an_exception_is_a_failed_attempt_retried_by_the_policy():
    calls: list[int] = []

    def flaky(event_name: str, data: Any) -> None:
        calls.append(1)
        raise ValueError("the ledger is locked")

    app = eventisc.App()
    app.listener("e", retry={"max_attempts": 3, "backoff_factor": 0, "retry_on": ["error"]})(flaky)
    with app:
        (delivery,) = app.dispatch("e", {})
    assert len(calls) == 3
    assert delivery.status == "failed" and delivery.attempts == 3
    assert isinstance(delivery.error, DeliveryError)
    assert "ValueError: the ledger is locked" in str(delivery.error)
    assert "flaky" in str(delivery.error)
    assert isinstance(delivery.error.__cause__, ValueError)


def test_a_connection_error_is_retried_by_the_default_policy():
    # Given a function failing once with ConnectionError, then working
    attempts: list[int] = []

    def reconnecting(event_name: str, data: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("refused")

    app = eventisc.App(retry={"max_attempts": 2, "backoff_factor": 0})
    app.listener("e")(reconnecting)
    with app:
        (delivery,) = app.dispatch("e")
    # Then "connect" (in the default retry_on) gave it a second attempt
    assert (delivery.status, delivery.attempts, len(attempts)) == ("delivered", 2, 2)


def test_translation_covers_python_errors():
    assert {cls for cls, _ in TRANSLATIONS} == {TimeoutError, ConnectionError}
    assert isinstance(translate_error(TimeoutError("slow"), "f"), DeliveryTimeout)
    assert isinstance(translate_error(ConnectionResetError("reset"), "f"), ConnectError)
    own = ConnectError("mine")
    assert translate_error(own, "f") is own
    assert str(translate_error(KeyError("k"), "m:f")) == "m:f raised KeyError: 'k'"


def test_returning_false_declines():
    app = eventisc.App(listeners=[python(f"{HERE}:decline")])
    with app:
        (delivery,) = app.dispatch("user_created", {})
        assert app.stats()["listeners"]["python:user_created"]["delivered"] == 0
    assert delivery.status == "skipped" and len(CALLS) == 1


def test_background_delivery_calls_the_function_from_a_worker_thread():
    app = eventisc.App(listeners=[python(f"{HERE}:record")], delivery="background")
    with app:
        assert app.trigger("user_created", {"n": 1}) == 1
        assert app.flush(10)
        assert app.stats()["listeners"]["python:user_created"]["delivered"] == 1
    assert len(CALLS) == 1 and CALLS[0][3] != threading.current_thread().name


def test_capture_records_and_does_not_call():
    app = eventisc.App(listeners=[python(f"{HERE}:record", data={"id": "{event_data[id]}"})])
    with app, eventisc.testing.capture(app) as events:
        app.trigger("user_created", {"id": 5})
    assert CALLS == []
    (notification,) = events.assert_triggered("user_created", id=5).notifications
    assert notification.payload == {"data": {"id": 5}}


def test_dry_run_logs_and_does_not_call(caplog):
    app = eventisc.App(listeners=[python(f"{HERE}:record")], dry_run=True)
    with app, caplog.at_level(logging.INFO, logger="eventisc"):
        assert app.trigger("user_created", {"id": 5}) == 1
    assert CALLS == []
    assert "dry-run" in caplog.text and "'id': 5" in caplog.text


def test_a_python_listener_built_from_python_takes_the_function_itself():
    listener = PythonListener("e", callable=record, name="rec")
    assert listener.function is record and listener.function_name == f"{HERE}:record"
    assert listener.notify("e", {"x": 1}) is True
    assert CALLS[0][:3] == ("record", "e", {"x": 1})


# -- stored rows: the outbox --------------------------------------------------------------------


def test_outbox_rows_are_delivered_by_calling_the_function(postgres_url, outbox_table):
    from eventisc.outbox.relay import Relay

    config = {
        "delivery": "outbox",
        "outbox": {"url": postgres_url, "table": outbox_table},
        "listeners": [python(f"{HERE}:record")],
    }
    with eventisc.App.from_config(config) as app:
        with psycopg.connect(postgres_url) as conn:
            assert app.trigger("user_created", {"n": 1}, connection=conn) == 1
        assert CALLS == []  # written, not called
        assert Relay(app, once=True, report_interval=0).run(install_signals=False) == 0
    assert [call[1:3] for call in CALLS] == [("user_created", {"n": 1})]


def test_event_data_json_cannot_hold_is_a_clear_error_when_stored(postgres_url, outbox_table):
    class User:  # no __json__, no to_dict: JSON cannot hold it
        pass

    config = {
        "delivery": "outbox",
        "outbox": {"url": postgres_url, "table": outbox_table},
        "listeners": [python(f"{HERE}:record")],
    }
    with eventisc.App.from_config(config) as app:
        (delivery,) = app.dispatch("user_created", {"user": User()})
    assert delivery.status == "failed"
    text = str(delivery.error)
    assert "cannot store the payload" in text
    assert "['event_data']['user']" in text and "User is not JSON serializable" in text
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {outbox_table}").fetchone() == (0,)
