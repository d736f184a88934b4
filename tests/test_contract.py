"""The contract every listener kind keeps, checked the same way for each kind.

A row of :data:`KINDS` says, for one kind: its minimal options, the option that holds a URL
with a password and how such a URL is spelled, a few bad options, the driver errors it must
translate, and where a real delivery goes. Every check below runs once per row: a new kind
gets them all by adding its row. The checks:

- render is pure: no I/O, the same payload twice, a payload the spool can store and read back;
- a password in the URL never shows: describe(), repr(), config errors, delivery errors, the
  logs (a failed delivery, dry-run) and the command line (``trigger --dry-run``, ``check``);
- fork safety: a forked child delivers on a connection of its own, and the parent's connection
  still works once the child has exited;
- a bad option fails at load with a path naming it;
- every driver error is translated (one signature for every kind), and a delivery to a dead
  port raises ConnectError, never a driver's exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
import yaml

import eventisc
from eventisc import ConfigError, ConnectError, EventiscError, Listener, Notification
from eventisc._spool_codec import decode_payload, encode_payload

from .conftest import RABBITMQ_HOST, RABBITMQ_PORT, REDIS_HOST, REDIS_PORT
from .driver_errors import celery_errors, http_errors, rabbit_errors
from .faults import FaultRelay, free_port
from .support import in_child, run_cli

#: The password in every listener URL here: it must never be shown.
SECRET = "s3cret-Pa55"

#: Event data with nesting, numbers, lists and text.
EVENT = {"n": 7, "user": {"id": 7, "email": "ada@example.com", "tags": ["a", "b"]}}

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


class Bug(NamedTuple):
    """A known bug in eventisc that a check finds: why it fails, and what it raises then."""

    reason: str
    raises: type[BaseException]


# -- the kinds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadOption:
    """Options that make a listener's config invalid, and the option its error must name."""

    name: str
    options: Mapping[str, Any]
    #: The error's path is ``listeners[0].<option>`` or below it.
    option: str
    #: Known bugs in eventisc: the checks ("path", "mask", "delivery") that fail with this
    #: option, and why (each a strict xfail).
    bugs: Mapping[str, Bug] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """Where a real delivery goes: a real service at ``address``, the listener's URL to it
    (``{address}`` filled in by the test), options of the listener, and how many deliveries
    arrived (waiting for ``n`` of them; None when the test does not read them back)."""

    address: tuple[str, int]
    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    arrived: Callable[[int], int] | None = None


@dataclass(frozen=True)
class Kind:
    """One listener kind, as the contract checks it."""

    kind: str
    #: The module whose ``translate_error`` maps the kind's driver errors.
    package: str
    #: The URL option, and its spelling with ``{password}`` and ``{address}`` (host:port).
    url_option: str
    url: str
    #: The options of its listeners besides ``event_name`` and the URL: the least the kind
    #: needs, and a template of the event data where the kind does not send it by default.
    options: Mapping[str, Any]
    bad_options: tuple[BadOption, ...]
    #: Every exception the kind's drivers define, and those below them.
    driver_errors: Callable[[], list[BaseException]]
    #: Where a real delivery can go, each a function of the test's ``request``.
    targets: tuple[Callable[[pytest.FixtureRequest], Target], ...]

    def definition(self, url: str, /, **options: Any) -> dict[str, Any]:
        """The config mapping of a listener of this kind sending to ``url`` (``options`` may
        replace it)."""
        return {
            "kind": self.kind,
            "event_name": "e",
            self.url_option: url,
            **self.options,
            **options,
        }

    def build(self, url: str, /, **options: Any) -> Listener:
        """A listener of this kind, built from its config mapping as an app builds it."""
        return Listener.from_config(self.definition(url, **options), "listeners[0]")

    def secret_url(self) -> str:
        """This kind's URL with :data:`SECRET` as password, to a port where nothing listens."""
        return self.url.format(password=SECRET, address=f"127.0.0.1:{free_port()}")

    def translate_error(self) -> Callable[..., Any]:
        """The kind's ``translate_error(exc, where, *, timeout, doing)``."""
        translate: Callable[..., Any] = importlib.import_module(self.package).translate_error
        return translate


def _secret(url: str, address: str = "127.0.0.1:1") -> str:
    return url.format(password=SECRET, address=address)


# Where real deliveries go (for the fork check). Each takes the fixtures it needs.


def http_to_receiver(request: pytest.FixtureRequest) -> Target:
    receiver = request.getfixturevalue("receiver")
    return Target(
        ("127.0.0.1", receiver.port),
        "http://bob:pw@{address}/hook",
        arrived=lambda n: len(receiver.wait_for(n)),
    )


def rabbit_to_rabbitmq(request: pytest.FixtureRequest) -> Target:
    broker = request.getfixturevalue("broker")  # skips when RabbitMQ is down
    queue = broker.name()
    broker.channel.queue_declare(queue)
    return Target(
        (RABBITMQ_HOST, RABBITMQ_PORT),
        "amqp://guest:guest@{address}/%2F",
        {"publish_kwargs": {"routing_key": queue}},
        arrived=lambda n: len(broker.get(queue, n)),
    )


def celery_to_rabbitmq(request: pytest.FixtureRequest) -> Target:
    broker = request.getfixturevalue("broker")  # skips when RabbitMQ is down
    queue = broker.name()
    broker.exchanges.append(queue)  # Celery declares a direct exchange named after the queue
    return Target(
        (RABBITMQ_HOST, RABBITMQ_PORT), "amqp://guest:guest@{address}//", {"queue": queue}
    )


def celery_to_redis(request: pytest.FixtureRequest) -> Target:
    import redis

    url = request.getfixturevalue("redis_url")  # skips when Redis is down
    queue = f"eventisc-contract-{os.urandom(5).hex()}"

    def delete() -> None:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
        client.close()

    request.addfinalizer(delete)
    return Target((REDIS_HOST, REDIS_PORT), "redis://{address}/15", {"queue": queue})


def url_options(option: str, url: str) -> tuple[BadOption, ...]:
    """Bad values of a kind's URL ``option`` spelled like ``url``: a port out of range, an
    unknown scheme, an IPv6 host without its closing bracket, a list."""
    ftp = _secret(url).replace(url.split(":", 1)[0], "ftp", 1)
    return (
        BadOption("url-port", {option: _secret(url, "h:99999")}, option),
        BadOption("url-scheme", {option: ftp}, option),
        BadOption("url-bracket", {option: _secret(url, "[::1")}, option),
        BadOption("url-list", {option: [_secret(url)]}, option),
    )


HTTP_URL = "http://bob:{password}@{address}/hook"
RABBIT_URL = "amqp://guest:{password}@{address}/%2F"
CELERY_URL = "amqp://guest:{password}@{address}//"

KINDS = (
    Kind(
        kind="http",
        package="eventisc.listeners.http",
        url_option="url",
        url=HTTP_URL,
        options={"data": {"n": "{event_data['n']}", "user": "{event_data['user']}"}},
        bad_options=(
            BadOption("timeout", {"timeout": 0}, "timeout"),
            BadOption("unknown", {"colour": "red"}, "colour"),
            BadOption("method", {"method": "FETCH"}, "method"),
            BadOption("requests_kwargs", {"requests_kwargs": {"sttream": 1}}, "requests_kwargs"),
            *url_options("url", HTTP_URL),
        ),
        driver_errors=http_errors,
        targets=(http_to_receiver,),
    ),
    Kind(
        kind="celery",
        package="eventisc.listeners.celery",
        url_option="broker_url",
        url=CELERY_URL,
        options={"task_name": "eventisc_test.record"},
        bad_options=(
            BadOption("timeout", {"timeout": 0}, "timeout"),
            BadOption("unknown", {"colour": "red"}, "colour"),
            BadOption("queue", {"queue": "{nope}"}, "queue"),
            BadOption("task_kwargs", {"task_kwargs": "event_data"}, "task_kwargs"),
            *url_options("broker_url", CELERY_URL),
        ),
        driver_errors=celery_errors,
        targets=(celery_to_rabbitmq, celery_to_redis),
    ),
    Kind(
        kind="rabbit",
        package="eventisc.listeners.rabbit",
        url_option="url",
        url=RABBIT_URL,
        options={"publish_kwargs": {"routing_key": "eventisc-contract"}},
        bad_options=(
            BadOption("timeout", {"timeout": 0}, "timeout"),
            BadOption("unknown", {"colour": "red"}, "colour"),
            BadOption("max_size", {"max_size": 0}, "max_size"),
            BadOption("properties", {"properties": {"delivery_mode": 3}}, "properties"),
            *url_options("url", RABBIT_URL),
        ),
        driver_errors=rabbit_errors,
        targets=(rabbit_to_rabbitmq,),
    ),
)

by_kind = pytest.mark.parametrize("row", KINDS, ids=lambda row: row.kind)


def _bad_option_cases(check: str, prefix: str = "") -> list[Any]:
    """(kind, bad option) pairs for ``check`` ("path", "mask", "delivery"), the options whose
    name starts with ``prefix``; a pair the check fails for a known bug is a strict xfail."""
    cases = []
    for row in KINDS:
        for bad in row.bad_options:
            if not bad.name.startswith(prefix):
                continue
            bug = bad.bugs.get(check)
            marks = []
            if bug is not None:
                marks = [pytest.mark.xfail(strict=True, reason=bug.reason, raises=bug.raises)]
            cases.append(pytest.param(row, bad, marks=marks, id=f"{row.kind}-{bad.name}"))
    return cases


def _fork_cases() -> list[Any]:
    return [
        pytest.param(row, target, id=f"{row.kind}-{target.__name__.split('_to_')[1]}")
        for row in KINDS
        for target in row.targets
    ]


def deliver(listener: Listener, who: str) -> Any:
    """Render and deliver one event; what deliver returned."""
    return listener.deliver(listener.render("e", {**EVENT, "who": who}))


# -- render is pure ----------------------------------------------------------------------------


@contextlib.contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Within, every socket connect and name lookup from this thread is refused and listed
    (other threads are left alone: a server of another test may still be winding down)."""
    attempts: list[str] = []
    me = threading.get_ident()

    def guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def guard(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != me:
                return original(*args, **kwargs)
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise ConnectionRefusedError(111, f"no I/O here: {name}")

        return guard

    with monkeypatch.context() as patch:
        for owner, attr, name in (
            (socket.socket, "connect", "socket.connect"),
            (socket.socket, "connect_ex", "socket.connect_ex"),
            (socket, "create_connection", "create_connection"),
            (socket, "getaddrinfo", "getaddrinfo"),
        ):
            patch.setattr(owner, attr, guarded(name, getattr(owner, attr)))
        yield attempts


def test_the_no_network_guard_sees_a_connect(monkeypatch):
    # The guard the purity check relies on: a connect inside it is refused and listed.
    with no_network(monkeypatch) as attempts, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port()), timeout=1)
    with no_network(monkeypatch) as more, pytest.raises(ConnectionRefusedError):
        socket.socket().connect(("127.0.0.1", free_port()))
    assert attempts and more


@by_kind
def test_building_and_rendering_do_no_io(row, monkeypatch):
    with no_network(monkeypatch) as attempts:
        listener = row.build(row.secret_url())
        for n in range(200):
            listener.render("e", {**EVENT, "n": n})
    assert attempts == [], f"{row.kind}: building or rendering did I/O: {attempts[:3]}"


@by_kind
def test_rendering_twice_gives_equal_notifications(row):
    listener = row.build(row.secret_url())
    first, second = listener.render("e", EVENT), listener.render("e", EVENT)
    assert isinstance(first, Notification), row.kind
    assert first.id != second.id, f"{row.kind}: two renders share a notification id"
    assert dataclasses.replace(second, id=first.id) == first, (
        f"{row.kind}: two renders of one event differ"
    )
    assert first.payload is not second.payload, f"{row.kind}: renders share their payload"


@by_kind
def test_the_payload_round_trips_through_the_spool_codec(row):
    listener = row.build(row.secret_url())
    payload = listener.render("e", EVENT).payload
    text = encode_payload(payload, listener.name)
    assert decode_payload(text) == payload, f"{row.kind}: the spool does not give it back"


# -- a password in the URL never shows ---------------------------------------------------------


@by_kind
def test_describe_and_repr_mask_the_password(row):
    url = row.secret_url()
    listener = row.build(url)
    shown = {"describe()": listener.describe(), "repr()": repr(listener)}
    leaks = {where: text for where, text in shown.items() if SECRET in text}
    assert leaks == {}, f"{row.kind} shows the password in {leaks}"
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert port in listener.describe(), f"{row.kind}: describe() does not say where it sends"


@pytest.mark.parametrize("row, bad", _bad_option_cases("mask"))
def test_a_config_error_masks_the_password(row, bad):
    with pytest.raises(ConfigError) as info:
        eventisc.App("", [row.definition(row.secret_url(), **bad.options)])
    error = info.value
    shown = [str(error), repr(error), error.message]
    assert not any(SECRET in text for text in shown), f"{row.kind}: {error}"


@by_kind
def test_a_failed_delivery_masks_the_password(row):
    listener = row.build(row.secret_url(), timeout=2)
    with pytest.raises(EventiscError) as info:
        deliver(listener, "nobody")
    assert SECRET not in str(info.value), f"{row.kind}: {info.value}"
    assert SECRET not in repr(info.value), f"{row.kind}: {info.value!r}"


@by_kind
def test_the_log_of_a_failed_delivery_masks_the_password(row, caplog):
    app = eventisc.create_app(listeners=[row.definition(row.secret_url(), timeout=2)])
    with app, caplog.at_level(logging.DEBUG, logger="eventisc"):
        assert app.trigger("e", EVENT) == 0
    ours = [r for r in caplog.records if r.name.startswith("eventisc")]
    assert ours, f"{row.kind}: the failure was not logged"
    assert SECRET not in caplog.text, f"{row.kind}: {caplog.text}"


@by_kind
def test_the_dry_run_log_masks_the_password(row, caplog):
    app = eventisc.create_app(listeners=[row.definition(row.secret_url())], dry_run=True)
    with app, caplog.at_level(logging.INFO, logger="eventisc"):
        assert app.trigger("e", EVENT) == 1
    assert "dry-run" in caplog.text, f"{row.kind}: dry-run logged nothing"
    # The message, its arguments and the extra fields a JSON log formatter would write.
    leaks = [r for r in caplog.records if SECRET in r.getMessage() or SECRET in str(vars(r))]
    assert leaks == [], f"{row.kind}: {[r.getMessage() for r in leaks]}"


def _config_file(row: Kind, tmp_path: Any) -> str:
    path = tmp_path / "eventisc.yaml"
    path.write_text(yaml.safe_dump({"listeners": [row.definition(row.secret_url())]}))
    return str(path)


@by_kind
def test_cli_trigger_dry_run_masks_the_password(row, tmp_path):
    config = _config_file(row, tmp_path)
    result = run_cli("trigger", config, "e", "--data", json.dumps(EVENT), "--dry-run")
    assert result.returncode == 0, f"{row.kind}: {result.stderr}"
    assert "not sent (dry-run)" in result.stdout, f"{row.kind}: {result.stdout}"
    assert SECRET not in result.stdout + result.stderr, f"{row.kind}: {result.stdout}"


@by_kind
def test_cli_check_masks_the_password(row, tmp_path):
    result = run_cli("check", _config_file(row, tmp_path))
    assert result.returncode == 0, f"{row.kind}: {result.stderr}"
    assert "-> " in result.stdout, f"{row.kind}: no target shown: {result.stdout}"
    assert SECRET not in result.stdout + result.stderr, f"{row.kind}: {result.stdout}"


# -- fork safety ---------------------------------------------------------------------------------


@needs_fork
@pytest.mark.parametrize("row, target", _fork_cases())
def test_a_forked_child_delivers_on_a_connection_of_its_own(row, target, request):
    # Given a listener that delivered once through a relay in front of a real service (the
    # relay counts the connections made to it)...
    live = target(request)
    with FaultRelay(live.address) as relay:
        listener = row.build(live.url.format(address=relay.address), timeout=5, **live.options)
        try:
            deliver(listener, "parent")
            parents = relay.accepted
            assert parents >= 1, f"{row.kind}: delivered without connecting"
            # ...when a forked child delivers, it does so on a connection of its own,
            code, report = in_child(lambda: deliver(listener, "child"))
            assert code == 0, f"{row.kind}: the child's delivery failed:\n{report}"
            assert relay.accepted > parents, f"{row.kind}: the child used the parent's connection"
            # and once the child has exited, the parent delivers on the connection it had.
            after_child = relay.accepted
            deliver(listener, "parent again")
            assert relay.accepted == after_child, (
                f"{row.kind}: the parent had to connect again after the child exited"
            )
        finally:
            listener.close()
    if live.arrived is not None:
        assert live.arrived(3) == 3, f"{row.kind}: not every delivery arrived"


# -- bad options fail at load, naming their path -------------------------------------------------


@pytest.mark.parametrize("row, bad", _bad_option_cases("path"))
def test_a_bad_option_fails_at_load_naming_its_path(row, bad):
    with pytest.raises(ConfigError) as info:
        eventisc.App("", [row.definition(row.secret_url(), **bad.options)])
    path = info.value.path or ""
    expected = f"listeners[0].{bad.option}"
    assert path == expected or path.startswith((f"{expected}.", f"{expected}[")), (
        f"{row.kind}: the error of {dict(bad.options)} is at {path!r}, not {expected!r}"
    )


# -- driver errors are translated ----------------------------------------------------------------


@by_kind
def test_translate_error_has_the_signature_every_kind_shares(row):
    parameters = inspect.signature(row.translate_error()).parameters
    shape = [(p.name, p.kind) for p in parameters.values()]
    assert shape == [
        ("exc", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("where", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("timeout", inspect.Parameter.KEYWORD_ONLY),
        ("doing", inspect.Parameter.KEYWORD_ONLY),
    ], f"{row.kind}: translate_error{inspect.signature(row.translate_error())}"
    assert parameters["timeout"].default is None, row.kind
    assert isinstance(parameters["doing"].default, str), row.kind


@by_kind
def test_translate_error_gives_an_eventisc_error_for_every_driver_error(row):
    translate = row.translate_error()
    wrong = []
    for exc in row.driver_errors():
        try:
            error = translate(exc, "127.0.0.1:1", timeout=1.0, doing="deliver")
        except Exception as raised:  # reported below, with the others
            wrong.append(f"{exc!r} raised {raised!r}")
            continue
        if not isinstance(error, EventiscError):
            wrong.append(f"{exc!r} gave {error!r}")
    assert wrong == [], f"{row.kind}: " + "\n".join(wrong)


@pytest.mark.parametrize("row, bad", _bad_option_cases("delivery", prefix="url-"))
def test_a_malformed_url_fails_at_load_or_delivery_with_an_eventisc_error(row, bad):
    # Refused at load (ConfigError) or when delivering: either way, never a raw exception.
    with pytest.raises(EventiscError):
        deliver(row.build(row.secret_url(), timeout=1, **bad.options), "nobody")


@by_kind
def test_a_delivery_to_a_dead_port_is_a_connect_error(row):
    listener = row.build(row.secret_url(), timeout=2)
    with pytest.raises(Exception) as info:
        deliver(listener, "nobody")
    assert isinstance(info.value, ConnectError), (
        f"{row.kind}: raised {type(info.value).__module__}.{type(info.value).__name__}"
    )
