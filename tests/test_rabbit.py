"""The rabbit kind against a real RabbitMQ; messages are read back with a plain pika client.

Some tests put a TCP relay (:class:`tests.faults.FaultRelay`) between the listener and RabbitMQ
to stall or cut the link: a real network fault on a real broker, pika itself is never patched.
"""

from __future__ import annotations

import inspect
import math
import os
import socket
import ssl
import threading
import time
from typing import Any

import pika
import pika.adapters.utils.connection_workflow as cw
import pika.exceptions as pe
import pytest

from eventisc import App
from eventisc.errors import (
    ConfigError,
    ConnectError,
    DeliveryError,
    DeliveryTimeout,
    Rejected,
    TemplateError,
    TriggerError,
)
from eventisc.listeners.rabbit import ConfirmTimeout, RabbitListener, mask_url, translate_error
from eventisc.listeners.rabbit import listener as rabbit_listener
from eventisc.pool import PoolTimeout

from .amqp import Broker, rabbit_relay, relay_url
from .conftest import rabbitmqctl
from .driver_errors import classes_of
from .faults import free_port
from .support import User, in_child

# -- helpers ---------------------------------------------------------------------------------


def make_app(url: str, **options: Any) -> App:
    return App("", [{"kind": "rabbit", "event_name": "user_created", "url": url, **options}])


# -- configuration and rendering (no broker) ------------------------------------------------


def test_render_is_pure_and_describe_masks_the_password() -> None:
    # The broker is never contacted: the URL points at a closed port.
    url = f"amqp://guest:secret@127.0.0.1:{free_port()}/%2F"
    listener = RabbitListener(
        "user_created",
        url,
        queue_kwargs={"queue": {"queue": "myqueue"}},
        publish_kwargs={"exchange": "", "routing_key": "{queue_kwargs['queue']['queue']}"},
    )
    n = listener.render("user_created", {"id": 7})
    assert n.payload == {
        "exchange": "",
        "routing_key": "myqueue",
        "body": '{"id":7}',
        "properties": {"content_type": "application/json", "delivery_mode": 2},
        "mandatory": False,
    }
    assert listener.describe() == (
        f"amqp://guest:***@127.0.0.1:{url.split(':')[3]} exchange='' routing_key='myqueue'"
    )
    assert mask_url("amqp://localhost/") == "amqp://localhost/"
    assert listener.pool.stats().created == 0


@pytest.mark.parametrize(
    "options, path, message",
    [
        ({"confirm": False, "mandatory": True}, "mandatory", "needs confirm"),
        ({"properties": {"colour": "red"}}, "properties", "unknown message properties"),
        ({"properties": {"delivery_mode": 3}}, "properties", "1 or 2"),
        ({"url": "amqp://h/?bogus=1"}, "url", "Unknown URL parameter"),
        ({"queue_kwargs": {"queue": {"queue": "q", "durabel": 1}}}, "kwargs.queue", "durabel"),
        ({"queue_kwargs": {}}, "publish_kwargs", "routing_key"),
        ({"publish_kwargs": {"body": "x"}}, "publish_kwargs", "`body` option"),
        ({"publish_kwargs": {"routing_key": "{event_data["}}, "publish_kwargs.routing_key", "}"),
        ({"max_size": 0}, "listeners[0].max_size", "minimum"),
    ],
)  # fmt: skip
def test_bad_options_fail_when_the_config_is_loaded(
    options: dict[str, Any], path: str, message: str
) -> None:
    definition = {
        "kind": "rabbit",
        "event_name": "x",
        "url": "amqp://guest:guest@127.0.0.1:1/",
        "queue_kwargs": {"queue": {"queue": "q"}},
        **options,
    }
    with pytest.raises(ConfigError) as info:
        App.from_config({"listeners": [definition]})
    assert info.value.path is not None and info.value.path.endswith(path.split("]")[-1])
    assert message in str(info.value)


def test_translate_error_covers_every_pika_exception() -> None:
    returned = [pika.adapters.blocking_connection.ReturnedMessage(
        pika.spec.Basic.Return(312, "NO_ROUTE", "ex", "rk"), pika.BasicProperties(), b""
    )]  # fmt: skip
    expected: dict[type[BaseException], tuple[type[DeliveryError], str]] = {
        pe.AMQPConnectionError: (ConnectError, "cannot connect"),
        pe.ConnectionOpenAborted: (ConnectError, "cannot connect"),
        pe.StreamLostError: (ConnectError, "lost"),
        pe.IncompatibleProtocolError: (ConnectError, "AMQP 0-9-1"),
        pe.AuthenticationError: (Rejected, "login"),
        pe.ProbableAuthenticationError: (Rejected, "login"),
        pe.ProbableAccessDeniedError: (Rejected, "virtual host"),
        pe.NoFreeChannels: (ConnectError, "cannot connect"),
        pe.ConnectionWrongStateError: (ConnectError, "cannot connect"),
        pe.ConnectionClosed: (ConnectError, "was closed"),
        pe.ConnectionClosedByBroker: (ConnectError, "closed the connection"),
        pe.ConnectionClosedByClient: (ConnectError, "was closed"),
        pe.ConnectionBlockedTimeout: (DeliveryTimeout, "blocked"),
        pe.AMQPHeartbeatTimeout: (ConnectError, "heartbeats"),
        ConfirmTimeout: (DeliveryTimeout, "did not confirm"),
        pe.AMQPChannelError: (ConnectError, "channel"),
        pe.ChannelWrongStateError: (ConnectError, "channel"),
        pe.ChannelClosed: (ConnectError, "channel"),
        pe.ChannelClosedByBroker: (ConnectError, "closed the channel"),
        pe.ChannelClosedByClient: (ConnectError, "channel"),
        pe.DuplicateConsumerTag: (ConnectError, "channel"),
        pe.ConsumerCancelled: (ConnectError, "channel"),
        pe.UnroutableError: (Rejected, "unroutable (exchange 'ex', routing key 'rk'"),
        pe.NackError: (Rejected, "nack"),
        pe.AMQPError: (DeliveryError, "cannot publish"),
        pe.InvalidChannelNumber: (DeliveryError, "cannot publish"),
        pe.ProtocolSyntaxError: (ConnectError, "failed"),
        pe.UnexpectedFrameError: (ConnectError, "failed"),
        pe.ProtocolVersionMismatch: (ConnectError, "failed"),
        pe.BodyTooLongError: (ConnectError, "failed"),
        pe.InvalidFrameError: (ConnectError, "failed"),
        pe.InvalidFieldTypeException: (DeliveryError, "cannot publish"),
        pe.UnsupportedAMQPFieldException: (DeliveryError, "cannot publish"),
        pe.MethodNotImplemented: (DeliveryError, "cannot publish"),
        pe.ChannelError: (DeliveryError, "cannot publish"),
        pe.ReentrancyError: (DeliveryError, "cannot publish"),
        pe.ShortStringTooLong: (DeliveryError, "cannot publish"),
        pe.DuplicateGetOkCallback: (DeliveryError, "cannot publish"),
    }
    known = set(classes_of(pe))
    assert known - set(expected) == set(), "a pika exception without a decided mapping"
    for cls, (error_cls, text) in expected.items():
        if cls in (pe.UnroutableError, pe.NackError):
            exc: BaseException = cls(returned)
        elif issubclass(cls, (pe.ConnectionClosed, pe.ChannelClosed)):
            exc = cls(320, "CONNECTION_FORCED")
        else:
            exc = cls("detail", 1)
        error = translate_error(exc, "h:5672", timeout=3)
        assert type(error) is error_cls, cls
        assert text in str(error), (cls, str(error))
        assert "h:5672" in str(error) or error_cls is DeliveryError, cls

    # Refusals the broker explains with a reply code are Rejected, not transient:
    refused = translate_error(pe.ConnectionClosedByBroker(403, "ACCESS_REFUSED"), "h:1")
    assert type(refused) is Rejected
    for code in (403, 404, 405, 406):
        error = translate_error(pe.ChannelClosedByBroker(code, "NO"), "h:1", doing="declare q")
        assert type(error) is Rejected and "refused to declare q" in str(error)
    mismatch = translate_error(pe.ChannelClosedByBroker(406, "PRECONDITION_FAILED"), "h:1")
    assert "make queue_kwargs match" in str(mismatch)
    assert type(translate_error(PoolTimeout("busy"), "h:1", timeout=2)) is DeliveryTimeout
    assert type(translate_error(ConnectionResetError(), "h:1")) is ConnectError
    assert type(translate_error(RuntimeError("?"), "h:1")) is DeliveryError


def _workflow_errors() -> dict[type[BaseException], tuple[BaseException, type, str]]:
    """One instance of each error pika's connection workflow raises or reports, with the
    eventisc error it must become and a text its message must hold."""
    timeout = cw.AMQPConnectorStackTimeout
    refused = ConnectionRefusedError(111, "Connection refused")
    return {
        cw.AMQPConnectorException: (cw.AMQPConnectorException("?"), ConnectError, "cannot"),
        cw.AMQPConnectorStackTimeout: (
            timeout("Timeout during AMQP handshake'h'/(...); ssl=False"),
            ConnectError,
            "accepted the TCP connection but did not complete the AMQP handshake within 3s",
        ),
        cw.AMQPConnectorAborted: (cw.AMQPConnectorAborted(), ConnectError, "aborted"),
        cw.AMQPConnectorWrongState: (cw.AMQPConnectorWrongState("?"), DeliveryError, "Wrong"),
        cw.AMQPConnectorPhaseErrorBase: (
            cw.AMQPConnectorPhaseErrorBase(refused),
            ConnectError,
            "Connection refused",
        ),
        cw.AMQPConnectorSocketConnectError: (
            cw.AMQPConnectorSocketConnectError(timeout("Timeout while connecting socket to")),
            ConnectError,
            "no TCP connection within 3s",
        ),
        cw.AMQPConnectorTransportSetupError: (
            cw.AMQPConnectorTransportSetupError(timeout("Timeout while setting up transport")),
            ConnectError,
            "did not complete the TLS handshake within 3s",
        ),
        cw.AMQPConnectorAMQPHandshakeError: (
            cw.AMQPConnectorAMQPHandshakeError(pe.ProbableAuthenticationError("?")),
            Rejected,
            "refused the login",
        ),
        cw.AMQPConnectionWorkflowAborted: (
            cw.AMQPConnectionWorkflowAborted(),
            ConnectError,
            "aborted",
        ),
        cw.AMQPConnectionWorkflowWrongState: (
            cw.AMQPConnectionWorkflowWrongState(),
            DeliveryError,
            "Wrong",
        ),
        cw.AMQPConnectionWorkflowFailed: (
            cw.AMQPConnectionWorkflowFailed([refused, socket.gaierror(-2, "Name not known")]),
            ConnectError,
            "cannot connect to RabbitMQ at h:5672: [Errno -2] Name not known",
        ),
    }


def test_translate_error_covers_every_error_of_pikas_connection_workflow() -> None:
    # A connect that did not complete (refused, timed out in the TCP, TLS or AMQP phase) is
    # transient; a refused login stays Rejected; pika's own state errors are not transient.
    expected = _workflow_errors()
    known = set(classes_of(cw))
    assert known - set(expected) == set(), "a connection-workflow error without a decision"
    for cls, (exc, error_cls, text) in expected.items():
        error = translate_error(exc, "h:5672", timeout=3)
        assert type(error) is error_cls, (cls, error)
        assert text in str(error), (cls, str(error))

    # How each connection reports it: BlockingConnection raises the phase's own error, a
    # SelectConnection wraps it in a failed workflow (and a refused TCP connect once more).
    stalled = cw.AMQPConnectorStackTimeout("Timeout while setting up transport to 'h'")
    for exc in (
        stalled,
        cw.AMQPConnectionWorkflowFailed([cw.AMQPConnectorTransportSetupError(stalled)]),
        pe.AMQPConnectionError(
            cw.AMQPConnectionWorkflowFailed([cw.AMQPConnectorSocketConnectError(stalled)])
        ),
    ):
        error = translate_error(exc, "h:5671", timeout=2)
        assert type(error) is ConnectError and "TLS handshake within 2s" in str(error), exc
    aborted = pe.ConnectionOpenAborted(
        "Connection.close() called before connection finished opening: prev_state=PROTOCOL "
        "(320): \"Timeout while setting up AMQP to 'h'/(...); ssl=False\""
    )  # how a SelectConnection ends an AMQP handshake that timed out
    error = translate_error(aborted, "h:5672", timeout=1)
    assert type(error) is ConnectError and "AMQP handshake within 1s" in str(error)
    empty = translate_error(cw.AMQPConnectionWorkflowFailed([]), "h:5672")
    assert type(empty) is ConnectError


def test_translate_error_decides_every_tls_error() -> None:
    # A TLS link that breaks is transient; a TLS setup that fails (a bad certificate, TLS
    # spoken to a plain AMQP port) fails the same way next time: not retried.
    expected = {
        ssl.SSLError: (DeliveryError, "is it a TLS port?"),
        ssl.SSLCertVerificationError: (DeliveryError, "ca_certs"),
        ssl.SSLWantReadError: (DeliveryError, "TLS with RabbitMQ at h:5671 failed"),
        ssl.SSLWantWriteError: (DeliveryError, "TLS with RabbitMQ at h:5671 failed"),
        ssl.SSLEOFError: (ConnectError, "h:5671"),
        ssl.SSLZeroReturnError: (ConnectError, "h:5671"),
        ssl.SSLSyscallError: (ConnectError, "h:5671"),
    }
    known = {
        cls for cls in vars(ssl).values() if isinstance(cls, type) and issubclass(cls, ssl.SSLError)
    }
    assert known - set(expected) == set(), "a TLS error without a decision"
    for cls, (error_cls, text) in expected.items():
        error = translate_error(cls(1, "detail"), "h:5671")
        assert type(error) is error_cls and text in str(error), (cls, str(error))
    # As BlockingConnection raises it for amqps:// to a plain port, and as a SelectConnection
    # reports it:
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    setup = cw.AMQPConnectionWorkflowFailed([cw.AMQPConnectorTransportSetupError(plain)])
    for exc in (plain, setup):
        error = translate_error(exc, "h:5672")
        assert type(error) is DeliveryError and "WRONG_VERSION_NUMBER" in str(error)


def test_amqps_to_a_plain_port_is_not_retried(rabbitmq_url: str) -> None:
    url = rabbitmq_url.replace("amqp://", "amqps://")  # RabbitMQ's plain AMQP port
    listener = RabbitListener("x", url, publish_kwargs={"routing_key": "q"}, timeout=5)
    with pytest.raises(DeliveryError) as info:
        listener.deliver(listener.render("x", {}))
    assert type(info.value) is DeliveryError and not info.value.transient
    assert "is it a TLS port?" in str(info.value)


@pytest.mark.parametrize(
    "url, message",
    [
        ("localhost", "must start with amqp:// or amqps://"),
        ("amqp:localhost", "must start with amqp:// or amqps://"),
        ("localhost:5672", "must start with amqp:// or amqps://"),
        ("http://guest:secret@h/", "must start with amqp:// or amqps://"),
        ("redis://h:6379/0", "must start with amqp:// or amqps://"),
        ("amqp:///%2F", "has no host"),
        ("amqp://guest:secret@:5672/%2F", "has no host"),
        ("amqp://guest:secret@h:99999/", "port is a number from 1 to 65535"),
        ("amqp://guest:secret@h:0/", "port is a number from 1 to 65535"),
        ("amqp://guest:secret@h:port/", "port is a number from 1 to 65535"),
        ("amqp://guest:secret@[::1/", "IPv6 host in brackets"),
        ("amqp://guest:secret@::1/", "IPv6 host in brackets"),
        ("amqp://guest:secret@h/%ZZ", "not a percent-escape"),
        ("amqp://guest:secret@h/a/b", "one segment"),
        ("amqp://guest@h/", "no password"),
        ("amqp://guest:sec#ret@h/", "percent-encode it (%23)"),
        ("amqp://guest:secret@h /", "a space or a control character"),
        ("amqp://guest:secret@h/?heartbeat=often", "heartbeat"),
        ("amqp://guest:secret@h/?heartbeat=70000", "heartbeat must be 0 to 65535"),
        ("amqp://guest:secret@h/?heartbeat=1&heartbeat=2", "exactly one value"),
        ("amqp://guest:secret@h/?colour=red", "Unknown URL parameter"),
        ("amqp://guest:secret@h/?socket_timeout=nan", "socket_timeout must be a finite"),
        ("amqp://guest:secret@h/?stack_timeout=inf", "stack_timeout must be a finite"),
        ("amqp://guest:secret@h/?blocked_connection_timeout=nan", "must be a finite"),
        ("amqp://guest:secret@h/?ssl_options={", "ssl_options: it must be a Python dict"),
        ("amqps://guest:secret@h/?ssl_options=[1]", "ssl_options: it must be a Python dict"),
        ("amqps://guest:secret@h/?ssl_options=None", "inconsistent with the specified amqps"),
        ("amqps://guest:secret@h/?ssl_options={'ca_certs':'/nowhere/ca.pem'}",
         "query option ssl_options: ca_certs: no such file '/nowhere/ca.pem'"),
        ("amqps://guest:secret@h/?ssl_options={'protocol':99}", "unsupported protocol"),
        ("amqp://guest:secret@h/?tcp_options={", "tcp_options: it must be a Python dict"),
        ("amqp://guest:secret@h/?tcp_options=1", "tcp_options: it must be a Python dict"),
        ("amqp://guest:secret@h/?client_properties=" + "(" * 100_000, "client_properties"),
        ("amqp://guest:secret@h/?frame_max=1", "Frame Size"),
        ("amqp://guest:secret@h/?channel_max=0", "channel_max"),
    ],
)  # fmt: skip
def test_a_bad_url_is_a_config_error_naming_the_url(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RabbitListener("x", url, publish_kwargs={"routing_key": "q"})
    assert info.value.path == "url"
    assert message in str(info.value)
    assert "secret" not in str(info.value)
    definition = {
        "kind": "rabbit",
        "event_name": "x",
        "url": url,
        "publish_kwargs": {"routing_key": "q"},
    }
    with pytest.raises(ConfigError) as info:
        App("", [definition])
    assert info.value.path == "listeners[0].url"
    assert "secret" not in str(info.value)


def test_a_password_in_ssl_options_is_never_shown() -> None:
    url = "amqps://guest:secret@h/?ssl_options={'certfile':'/nowhere.pem','password':'hush'}"
    with pytest.raises(ConfigError) as info:
        RabbitListener("x", url, publish_kwargs={"routing_key": "q"})
    assert "hush" not in str(info.value) and "secret" not in str(info.value)
    ok = RabbitListener(
        "x", "amqp://guest:secret@h/%2F?heartbeat=30", publish_kwargs={"routing_key": "q"}
    )
    assert ok.describe() == "amqp://guest:***@h/%2F?heartbeat=30 exchange='' routing_key='q'"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("timeout", math.nan, "finite number of seconds above 0"),
        ("timeout", math.inf, "finite number of seconds above 0"),
        ("timeout", 1e300, "finite number of seconds above 0"),
        ("timeout", 0, "finite number of seconds above 0"),
        ("timeout", True, "number of seconds"),
        ("timeout", "10", "number of seconds"),
        ("recycle", math.nan, "finite number of seconds above 0"),
        ("recycle", 0, "finite number of seconds above 0"),
        ("stale", -math.inf, "finite number of seconds above 0"),
        ("stale", "1", "number of seconds"),
        ("max_in_flight", True, "must be an integer"),
        ("max_in_flight", 10.0, "must be an integer"),
        ("max_in_flight", "10", "must be an integer"),
        ("max_in_flight", 0, "at least 1"),
        ("max_size", False, "must be an integer"),
        ("max_size", 2.0, "must be an integer"),
        ("max_size", 0, "at least 1"),
        ("max_overflow", True, "must be an integer"),
        ("max_overflow", -1, "at least 0"),
    ],
)
def test_unusable_numbers_are_config_errors_naming_the_option(
    option: str, value: Any, message: str
) -> None:
    url = "amqp://guest:guest@127.0.0.1:1/%2F"
    with pytest.raises(ConfigError) as info:
        RabbitListener("x", url, publish_kwargs={"routing_key": "q"}, **{option: value})
    assert info.value.path == option and message in str(info.value)
    definition = {"kind": "rabbit", "event_name": "x", "url": url, option: value}
    with pytest.raises(ConfigError) as info:  # the schema or the listener refuses it
        App("", [{**definition, "publish_kwargs": {"routing_key": "q"}}])
    assert info.value.path == f"listeners[0].{option}"


def test_the_limits_of_numbers_are_accepted() -> None:
    listener = RabbitListener(
        "x",
        "amqp://guest:guest@127.0.0.1:1/%2F",
        publish_kwargs={"routing_key": "q"},
        timeout=threading.TIMEOUT_MAX,
        recycle=0.5,
        stale=1,
        max_in_flight=1,
        max_size=1,
        max_overflow=0,
    )
    assert listener.timeout == threading.TIMEOUT_MAX


# -- delivering to a real RabbitMQ ----------------------------------------------------------


def test_readme_example_publishes_to_the_default_exchange(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(
        broker.url,
        queue_kwargs={"queue": {"queue": queue}},
        publish_kwargs={"exchange": "", "routing_key": "{queue_kwargs['queue']['queue']}"},
    )
    with app:
        assert app.trigger("user_created", {"id": 1, "email": "a@b.c"}) == 1
    [(method, properties, body)] = broker.get(queue)
    assert (method.exchange, method.routing_key) == ("", queue)
    assert body == b'{"id":1,"email":"a@b.c"}'
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2


def test_the_queue_is_declared_once_per_connection_and_bound_to_the_exchange(
    broker: Broker,
) -> None:
    queue, exchange = broker.name(), broker.name("x")
    app = make_app(
        broker.url,
        queue_kwargs={
            "queue": {"queue": queue, "durable": True},
            "exchange": {"exchange": exchange, "exchange_type": "topic"},
            "bind": {"routing_key": "user.*"},
        },
        publish_kwargs={"exchange": exchange, "routing_key": "user.{event_data[action]}"},
    )
    with app:
        for action in ("created", "deleted"):
            assert app.trigger("user_created", {"action": action}) == 1
        assert app.listeners[0].pool.stats().created == 1
    got = broker.get(queue, 2)
    assert [(m.exchange, m.routing_key) for m, _, _ in got] == [
        (exchange, "user.created"),
        (exchange, "user.deleted"),
    ]


def test_the_binding_key_defaults_to_the_queue_name(broker: Broker) -> None:
    queue, exchange = broker.name(), broker.name("x")
    queue_kwargs = {"queue": {"queue": queue}, "exchange": {"exchange": exchange}}
    with make_app(
        broker.url, queue_kwargs=queue_kwargs, publish_kwargs={"exchange": exchange}
    ) as app:
        assert app.trigger("user_created", {}) == 1
    [(method, _, _)] = broker.get(queue)
    assert (method.exchange, method.routing_key) == (exchange, queue)


def test_mandatory_message_without_a_route_is_rejected(broker: Broker) -> None:
    exchange = broker.name("x")
    app = make_app(
        broker.url,
        queue_kwargs={"exchange": {"exchange": exchange, "exchange_type": "direct"}},
        publish_kwargs={"exchange": exchange, "routing_key": "nowhere"},
        mandatory=True,
    )
    app.raise_errors = True
    with app:
        for _ in range(2):
            with pytest.raises(TriggerError) as info:
                app.trigger("user_created", {})
            [(name, error)] = info.value.failures
            assert isinstance(error, Rejected) and not error.transient
            assert "unroutable" in str(error) and "'nowhere'" in str(error)
            assert error.listener == name
        stats = app.listeners[0].pool.stats()
        assert (stats.created, stats.open) == (1, 1)  # a refusal does not drop the connection


def test_body_template_and_properties(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(
        broker.url,
        queue_kwargs={"queue": {"queue": queue}},
        body="hello {event_data[name]}",
        properties={
            "content_type": "text/plain",
            "headers": {"x-event": "{event_name}", "x-count": "{event_data[n]}"},
            "message_id": "msg-{event_data[n]}",
            "expiration": 60000,
            "priority": 3,
        },
    )
    with app:
        assert app.trigger("user_created", {"name": "Ana", "n": 4}) == 1
    [(_, properties, body)] = broker.get(queue)
    assert body == b"hello Ana"
    assert properties.content_type == "text/plain"
    assert properties.delivery_mode == 2  # default kept when not overridden
    assert properties.headers == {"x-event": "user_created", "x-count": 4}
    assert (properties.message_id, properties.expiration, properties.priority) == (
        "msg-4",
        "60000",
        3,
    )


def test_unencodable_event_data_is_a_template_error_naming_the_listener(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(broker.url, name="audit", queue_kwargs={"queue": {"queue": queue}})
    app.raise_errors = True
    with app, pytest.raises(TriggerError) as info:
        app.trigger("user_created", {"user": User(1, "a@b.c")})
    [(_, error)] = info.value.failures
    assert isinstance(error, TemplateError) and error.listener == "audit"
    assert "listener 'audit'" in str(error) and "cannot encode the event data" in str(error)
    assert app.listeners[0].pool.stats().created == 0  # failed at render, before any I/O


def test_a_body_template_can_send_what_json_cannot(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(
        broker.url,
        queue_kwargs={"queue": {"queue": queue}},
        body={"id": "{event_data['user'].id}", "email": "{event_data['user'].email}"},
    )
    with app:
        assert app.trigger("user_created", {"user": User(1, "a@b.c")}) == 1
    [(_, properties, body)] = broker.get(queue)
    assert body == b'{"id":1,"email":"a@b.c"}'
    assert properties.content_type == "application/json"


def test_many_threads_share_one_bounded_pool(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": queue}}, max_size=2, max_overflow=2)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(200):
                assert app.trigger("user_created", {"w": worker, "i": i}) == 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    with app:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = app.listeners[0].pool.stats()
    assert errors == []
    assert stats.peak_open <= 4 and stats.in_use == 0 and stats.open <= 2
    assert broker.count(queue) == 1600  # confirmed: every message is in the queue


def test_a_declare_mismatch_says_so(broker: Broker) -> None:
    queue = broker.name()
    broker.channel.queue_declare(queue, durable=True)
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": queue, "durable": False}})
    app.raise_errors = True
    with app, pytest.raises(TriggerError) as info:
        app.trigger("user_created", {})
    [(_, error)] = info.value.failures
    assert isinstance(error, Rejected)
    assert f"refused to declare queue '{queue}'" in str(error)
    assert "PRECONDITION_FAILED" in str(error) and "make queue_kwargs match" in str(error)
    assert app.listeners[0].pool.stats().open == 0


def test_publishing_to_a_missing_exchange_is_rejected(broker: Broker) -> None:
    exchange = broker.name("x")  # never declared
    app = make_app(broker.url, publish_kwargs={"exchange": exchange, "routing_key": "k"})
    app.raise_errors = True
    with app, pytest.raises(TriggerError) as info:
        app.trigger("user_created", {})
    [(_, error)] = info.value.failures
    assert isinstance(error, Rejected)
    assert f"NOT_FOUND - no exchange '{exchange}'" in str(error)


def test_close_releases_connections_and_the_listener_reconnects(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": queue}})
    pool = app.listeners[0].pool
    assert app.trigger("user_created", {"n": 1}) == 1
    app.close()
    assert (pool.stats().open, pool.stats().closed) == (0, 1)
    assert app.trigger("user_created", {"n": 2}) == 1
    app.close()
    assert pool.stats().created == 2
    assert broker.count(queue) == 2


def test_dry_run_never_connects(broker: Broker) -> None:
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": broker.name()}})
    app.dry_run = True
    assert app.trigger("user_created", {}) == 1
    assert app.listeners[0].pool.stats().created == 0


def test_a_wrong_password_is_rejected(rabbitmq_url: str) -> None:
    url = rabbitmq_url.replace("guest:guest", "guest:wrong")
    listener = RabbitListener("x", url, queue_kwargs={"queue": {"queue": "unused"}})
    with pytest.raises(Rejected, match="refused the login"):
        listener.deliver(listener.render("x", {}))


def test_app_starts_while_rabbitmq_is_down_and_delivers_once_it_is_up(broker: Broker) -> None:
    # Given a URL where nothing listens yet (RabbitMQ "down"), the app still starts.
    queue = broker.name()
    port = free_port()
    app = make_app(
        f"amqp://guest:guest@127.0.0.1:{port}/%2F", queue_kwargs={"queue": {"queue": queue}}
    )
    app.raise_errors = True
    started = time.monotonic()
    with pytest.raises(TriggerError) as info:
        app.trigger("user_created", {"n": 1})
    [(_, error)] = info.value.failures
    assert isinstance(error, ConnectError) and error.transient
    assert f"127.0.0.1:{port}" in str(error)
    assert time.monotonic() - started < 2
    assert app.listeners[0].pool.stats().open == 0
    # When RabbitMQ answers on that port, the next trigger connects, declares and delivers.
    relay = rabbit_relay(port)
    try:
        assert app.trigger("user_created", {"n": 2}) == 1
    finally:
        app.close()
        relay.close()
    [(_, _, body)] = broker.get(queue)
    assert body == b'{"n":2}'


@pytest.mark.parametrize("confirm", [True, False])
def test_a_connection_cut_while_idle_is_replaced_by_the_retry(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, confirm: bool
) -> None:
    # No probe before reuse: the publish itself finds the connection dead, then retries once.
    monkeypatch.setattr(rabbit_listener, "PROBE_AFTER", 3600.0)
    queue = broker.name()
    relay = rabbit_relay()
    app = make_app(relay_url(relay), queue_kwargs={"queue": {"queue": queue}}, confirm=confirm)
    try:
        assert app.trigger("user_created", {"n": 1}) == 1
        time.sleep(0.2)  # unconfirmed, n=1 may still be in the relay: a cut would lose it
        relay.cut()
        time.sleep(0.1)
        with caplog.at_level("INFO", "eventisc"):
            assert app.trigger("user_created", {"n": 2}) == 1
        assert "publishing again on a fresh connection" in caplog.text
        assert app.listeners[0].pool.stats().created == 2
    finally:
        app.close()
        relay.close()
    bodies = [body for _, _, body in broker.get(queue, 2)]
    assert bodies == [b'{"n":1}', b'{"n":2}']


@pytest.mark.parametrize("confirm", [True, False])
def test_a_pooled_connection_writes_each_message_in_one_chunk(
    broker: Broker, confirm: bool
) -> None:
    # pika buffers a message's method, header and body frames one by one, and sends each with
    # its own send(); the pooled connections join them (pika internals, guarded here).
    assert "_output_marshaled_frames" in inspect.getsource(pika.connection.Connection._send_message)
    queue = broker.name()
    listener = RabbitListener("e", broker.url, queue_kwargs={"queue": {"queue": queue}},
                              confirm=confirm)  # fmt: skip
    try:
        listener.deliver(listener.render("e", {"n": 0}))
        with listener.pool.acquire() as pooled:
            transport = pooled.impl._transport
        writes: list[bytes] = []
        write = transport.write
        transport.write = lambda data: (writes.append(data), write(data))[1]
        listener.deliver(listener.render("e", {"n": 1}))
        assert len(writes) == 1 and writes[0].endswith(b'{"n":1}\xce')  # frame-end octet
        assert [body for _, _, body in broker.get(queue, 2)] == [b'{"n":0}', b'{"n":1}']
    finally:
        listener.close()


def test_a_missing_confirm_is_a_timeout_not_a_hang(broker: Broker) -> None:
    queue = broker.name()
    relay = rabbit_relay()
    app = make_app(relay_url(relay), queue_kwargs={"queue": {"queue": queue}}, timeout=1)
    app.raise_errors = True
    try:
        assert app.trigger("user_created", {}) == 1
        relay.mode = "stall"  # the broker never answers again on this link
        started = time.monotonic()
        with pytest.raises(TriggerError) as info:
            app.trigger("user_created", {})
        elapsed = time.monotonic() - started
        [(_, error)] = info.value.failures
        assert isinstance(error, DeliveryTimeout)
        assert "did not confirm the message within 1s" in str(error)
        assert 0.9 < elapsed < 3  # one attempt: a timed-out message is not sent twice
        assert app.listeners[0].pool.stats().open == 0
    finally:
        relay.mode = "forward"
        app.close()
        relay.close()


@pytest.mark.slow
def test_heartbeat_keeps_an_idle_connection_alive(broker: Broker) -> None:
    queue = broker.name()
    url = broker.url + "?heartbeat=2"
    with make_app(url, queue_kwargs={"queue": {"queue": queue}}) as app:
        assert app.trigger("user_created", {"n": 1}) == 1
        for _ in range(7):  # ~3 heartbeat intervals; unattended, RabbitMQ drops it after ~5 s
            time.sleep(1)
            app.heartbeat()
        pool = app.listeners[0].pool
        assert pool.stats().open == 1
        assert app.trigger("user_created", {"n": 2}) == 1
        assert pool.stats().created == 1  # the same connection, still usable
    assert broker.count(queue) == 2


@pytest.mark.slow
def test_without_heartbeats_the_broker_drops_it_and_the_retry_delivers(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rabbit_listener, "PROBE_AFTER", 3600.0)  # let the publish find out
    queue = broker.name()
    with make_app(broker.url + "?heartbeat=2", queue_kwargs={"queue": {"queue": queue}}) as app:
        assert app.trigger("user_created", {"n": 1}) == 1
        time.sleep(7)
        with caplog.at_level("INFO", "eventisc"):
            assert app.trigger("user_created", {"n": 2}) == 1
        assert "publishing again on a fresh connection" in caplog.text
        assert app.listeners[0].pool.stats().created == 2
    assert broker.count(queue) == 2


@pytest.mark.slow
def test_a_broker_restart_redeclares_the_queue(broker: Broker) -> None:
    # Given a non-durable queue, which a restart drops...
    queue = broker.name()
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": queue, "durable": False}})
    app.raise_errors = True
    with app:
        assert app.trigger("user_created", {"n": 1}) == 1
        try:
            rabbitmqctl("stop_app")
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        broker.reconnect()
        assert not broker.exists(queue)
        # ...the trigger after the restart reconnects, declares it again and delivers into it.
        assert app.trigger("user_created", {"n": 2}) == 1
    [(_, _, body)] = broker.get(queue)
    assert body == b'{"n":2}'


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_connection(broker: Broker) -> None:
    queue = broker.name()
    app = make_app(broker.url, queue_kwargs={"queue": {"queue": queue}})
    pool = app.listeners[0].pool
    assert app.trigger("user_created", {"who": "parent"}) == 1

    def child() -> str:  # never touches the parent's socket
        sent = app.trigger("user_created", {"who": "child"})
        app.close()
        return f"sent {sent}, created {pool.stats().created}"

    assert in_child(child) == (0, "sent 1, created 1")
    with app:
        assert app.trigger("user_created", {"who": "parent"}) == 1
        assert pool.stats().created == 1  # the parent's connection survived the child
    bodies = sorted(body for _, _, body in broker.get(queue, 3))
    assert bodies == [b'{"who":"child"}', b'{"who":"parent"}', b'{"who":"parent"}']
